"""``GTASR_LoadModel``: GTASR weights from models/gtasr (or the released file, downloaded on request) as a
ComfyUI-managed model."""

from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..gtasr_core import load_gtasr
from ..srkit.download import download_model
from ..srkit.model_registry import GTASR_FINAL
from .folders import file_list, full_path
from .runtime import check_cancel

log = logging.getLogger(__name__)

GTASRModel = io.Custom("GTASR_MODEL")
FOLDER = GTASR_FINAL.folder
DOWNLOAD_ENTRY = f"{GTASR_FINAL.filename} (download)"
PRECISIONS: dict[str, torch.dtype | None] = {
    "auto": None,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def model_options() -> list[str]:
    """Files in the ``gtasr`` folders plus the entry that downloads the released weights."""
    return [*file_list(FOLDER), DOWNLOAD_ENTRY]


def resolve_model_file(model_name: str, download_released: bool) -> str:
    """Path of the chosen file; the download entry fetches the released weights into the first folder."""
    if model_name != DOWNLOAD_ENTRY:
        return full_path(FOLDER, model_name)
    target = folder_paths.get_folder_paths(FOLDER)[0]
    if not download_released:
        raise ValueError(
            f"{DOWNLOAD_ENTRY!r} is selected but download_released is off. Turn download_released on to fetch "
            f"{GTASR_FINAL.filename} from the Hugging Face repo {GTASR_FINAL.repo_id}, or download it by hand "
            f"from {GTASR_FINAL.url()} into {target} and pick it in model_name."
        )
    pbar = comfy.utils.ProgressBar(1)  # bytes

    def progress(done: int, total: int | None) -> None:
        pbar.update_absolute(done, total or done)
        check_cancel()  # throttled progress updates no longer check for cancel on every chunk

    path = download_model(GTASR_FINAL, target, progress=progress)
    return str(path)


def weight_dtype(precision: str, device: torch.device, params: int) -> torch.dtype:
    """The requested dtype, or for ``auto`` ComfyUI's choice for ``device`` among bf16 and fp32.

    fp16 is only used when asked for: GTASR was trained in fp32 and its GroupNorm/attention ranges are not
    validated in fp16, while bf16 keeps fp32's range.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}")
    chosen = PRECISIONS[precision]
    if chosen is not None:
        return chosen
    dtype = mm.unet_dtype(device, params, supported_dtypes=[torch.bfloat16, torch.float32])
    if dtype not in (
        torch.float32,
        torch.bfloat16,
        torch.float16,
    ):  # e.g. --fp8_e4m3fn-unet: not for this net
        dtype = torch.bfloat16 if mm.should_use_bf16(device) else torch.float32
    return dtype


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GTASR_LoadModel",
            display_name="GTASR Load Model",
            category="sr4k/gtasr",
            description="Loads GTASR weights (the released GTASR_final_phase.pth, a BasicSR .pth, or a converted "
            ".safetensors) from models/gtasr. The architecture is read from the file; EMA weights are used.",
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=model_options(),
                    tooltip=f"A GTASR file from models/gtasr. '{DOWNLOAD_ENTRY}' fetches the released "
                    f"weights from Hugging Face ({GTASR_FINAL.repo_id}) when download_released is on.",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    tooltip="Weight and compute dtype. auto: bf16 where the device supports it, else "
                    "fp32 (GTASR was trained in fp32; fp16 is faster on old GPUs but untested).",
                ),
                io.Boolean.Input(
                    "download_released",
                    default=False,
                    optional=True,
                    tooltip=f"Allow downloading {GTASR_FINAL.filename} (about 1.4 GB) into the first "
                    "gtasr folder when the download entry is selected. Off: never use the network.",
                ),
            ],
            outputs=[
                GTASRModel.Output(tooltip="The GTASR network, managed by ComfyUI (offloaded when idle).")
            ],
        )

    @classmethod
    def execute(cls, model_name: str, precision: str, download_released: bool = False) -> io.NodeOutput:
        path = resolve_model_file(model_name, download_released)
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        net = load_gtasr(path, device=offload_device)
        dtype = weight_dtype(precision, load_device, sum(p.numel() for p in net.parameters()))
        net = net.to(dtype=dtype)
        log.info(
            "GTASR: loaded %s (%s, %d M parameters)",
            path,
            dtype,
            sum(p.numel() for p in net.parameters()) // 10**6,
        )
        return io.NodeOutput(
            comfy.model_patcher.ModelPatcher(net, load_device=load_device, offload_device=offload_device)
        )
