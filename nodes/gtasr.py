"""``GTASR_LoadModel`` and ``GTASR_Upscale``: the one-step GTASR upscaler on ComfyUI's model manager."""

from __future__ import annotations

import logging
from typing import Any

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..gtasr_core import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    MAX_PASSES,
    GTASRNet,
    load_gtasr,
    passes_for,
    upscale,
    upscale_to_size,
)
from ..gtasr_core.memory import upscale_memory
from ..srkit.download import download_model
from ..srkit.images import check_image
from ..srkit.model_registry import GTASR_FINAL
from ..srkit.sizing import target_size
from .common import from_comfy_image, to_comfy_image
from .folders import file_list, full_path
from .gtasr_preview import TilePreview
from .runtime import check_cancel, is_oom

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
TILING = ("auto", "off", "force")
TARGETS = ("scale", "long_side")
PROGRESS_UNITS = 1000  # per image and pass
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes any unsigned 64-bit value


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


def fits_patch_free(need: int, device: torch.device) -> bool:
    """Whether ``need`` bytes (``gtasr_core.memory.upscale_memory``) are free on ``device`` now."""
    return need <= mm.get_free_memory(device)


def _gtasr_net(model: object) -> GTASRNet:
    net = getattr(model, "model", None)
    if not isinstance(net, GTASRNet):
        kind = type(net).__name__ if net is not None else type(model).__name__
        raise TypeError(f"gtasr_model must come from GTASR Load Model, got a {kind}.")
    return net


def _oom_advice(tiling: str, tile_size: int, multiple: int) -> str:
    if tiling == "off":
        return (
            "Set tiling to auto (falls back to tiles when the whole image does not fit) or force with a "
            "smaller tile_size, pick precision bf16/fp16, or free memory (unload other models)."
        )
    if tiling == "auto":  # auto has already halved its tiles down to the multiple
        return (
            "Pick precision bf16/fp16, or free memory (unload other models, or start ComfyUI with --lowvram)."
        )
    smaller = tile_size // 2 // multiple * multiple
    tile = (
        f"Lower tile_size (now {tile_size}; try {smaller})" if smaller >= multiple else "tile_size is minimal"
    )
    return f"{tile}, pick precision bf16/fp16, or free memory (unload other models)."


class Upscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GTASR_Upscale",
            display_name="GTASR Upscale (one step, any size)",
            category="sr4k/gtasr",
            description="Super-resolves images with GTASR: each x4 pass is one network call (bicubic x4 plus "
            "seeded noise, then one consistency-model step); other sizes take x4 passes (x16 = two) and an "
            "exact antialiased resize to the target scale or long side. Whole image at once when it fits; "
            "tiles with feathered blending otherwise (or when forced), previewed as they finish. RGBA keeps "
            "its alpha (resized bicubically).",
            inputs=[
                GTASRModel.Input("gtasr_model", tooltip="From GTASR Load Model."),
                io.Image.Input(
                    "image",
                    tooltip="Low-resolution image(s), RGB or RGBA; any size (padded "
                    "internally to the network's multiple and cropped back).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=SEED_MAX,
                    control_after_generate=True,
                    tooltip="Seed of the noise GTASR starts from (same seed, same output). Every image of "
                    "a batch gets the same noise, so video frames stay consistent.",
                ),
                io.Combo.Input(
                    "tiling",
                    options=list(TILING),
                    default="auto",
                    tooltip="auto: whole image if it fits in memory, else tiles (and tiles after an "
                    "out-of-memory error). off: always whole image, error if it does not fit. force: "
                    "always tiles of tile_size.",
                ),
                io.Int.Input(
                    "tile_size",
                    default=DEFAULT_TILE,
                    min=64,
                    max=8192,
                    step=64,
                    tooltip="Tile side in low-res pixels (a multiple of the network's multiple, 64 for "
                    "the released model). 512 is the released setting.",
                ),
                io.Int.Input(
                    "overlap",
                    default=DEFAULT_OVERLAP,
                    min=0,
                    max=1024,
                    step=8,
                    tooltip="Overlap between tiles in low-res pixels, blended with smooth ramps "
                    "(64 is the released setting).",
                ),
                # Optional and last, so workflows saved before they existed stay valid (x4, as then).
                io.Combo.Input(
                    "target",
                    options=list(TARGETS),
                    default="scale",
                    optional=True,
                    tooltip="Size the output by a scale factor, or by its long side in pixels.",
                ),
                io.Float.Input(
                    "scale",
                    default=4.0,
                    min=0.25,
                    max=float(4**MAX_PASSES),
                    step=0.25,
                    optional=True,
                    tooltip="Output/input size ratio when target is scale. 4 = one network pass; "
                    "up to 16 = two passes, then an antialiased resize to the exact size.",
                ),
                io.Int.Input(
                    "long_side",
                    default=4096,
                    min=64,
                    max=16384,
                    step=8,
                    optional=True,
                    tooltip="Output long side in pixels when target is long_side (4096 = 4K); the "
                    "aspect ratio is kept.",
                ),
            ],
            outputs=[io.Image.Output(tooltip="The upscaled image(s), at the target size.")],
        )

    @classmethod
    def execute(
        cls,
        gtasr_model: Any,  # a ComfyUI ModelPatcher
        image: torch.Tensor,
        seed: int,
        tiling: str,
        tile_size: int,
        overlap: int,
        target: str = "scale",
        scale: float = 4.0,
        long_side: int = 4096,
    ) -> io.NodeOutput:
        net = _gtasr_net(gtasr_model)
        lr = from_comfy_image(image)
        check_image(lr, purpose="GTASR")
        if tiling not in TILING:
            raise ValueError(f"tiling={tiling!r}; choose one of {', '.join(TILING)}")
        if target not in TARGETS:
            raise ValueError(f"target={target!r}; choose one of {', '.join(TARGETS)}")
        h, w = lr.shape[-2:]
        size = target_size(h, w, scale=scale) if target == "scale" else target_size(h, w, long_side=long_side)
        passes = passes_for(h, w, size, net.scale)  # a clear error before any work if the target is too large
        batch, units = lr.shape[0], PROGRESS_UNITS
        pbar = comfy.utils.ProgressBar(batch * passes * units)
        preview = TilePreview()
        state = {"image": 0, "patch_free": True, "lr_hw": (h, w)}

        def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
            # force reserves one tile's working memory (the whole-image buffers stay on the intermediate device);
            # off/auto ask for the whole image, so ComfyUI evicts other models before auto decides.
            ph, pw = x.shape[-2:]
            need = (
                upscale_memory(net, min(tile_size, ph), min(tile_size, pw))
                if tiling == "force"
                else upscale_memory(net, ph, pw)
            )
            mm.load_models_gpu([gtasr_model], memory_required=need, force_full_load=True)
            device = next(net.parameters()).device
            state.update(
                patch_free=tiling == "off" or (tiling == "auto" and fits_patch_free(need, device)),
                lr_hw=tuple(x.shape[-2:]),
            )
            base = (state["image"] * passes + k) * units
            pbar.update_absolute(base, batch * passes * units)
            check_cancel()  # before each pass
            preview.start(x, net.scale)

            def report(done: int, total: int) -> None:
                pbar.update_absolute(base + done * units // total, batch * passes * units, preview.take())
                check_cancel()  # between tiles: newer ComfyUI throttles progress updates (its cancel point)

            return upscale(
                net,
                x.float(),
                seed=seed,
                tile=None if state["patch_free"] else tile_size,
                overlap=overlap,
                progress=report,
                allow_tile_fallback=tiling == "auto",
                fallback_tile=tile_size,
                on_tile=preview.paste,
            )

        outs, oom = [], False
        try:
            for i in range(batch):
                state["image"] = i
                check_cancel()  # before each image
                out = upscale_to_size(lr[i : i + 1].float(), size, run_pass, net.scale)
                outs.append(out.to(mm.intermediate_device()))
        except Exception as e:
            if not is_oom(e):
                raise
            oom = True  # raised below, outside the except block, so the failed step's tensors are freed
        finally:
            mm.soft_empty_cache()
        if oom:
            ph, pw = state["lr_hw"]
            mode = (
                f"in {tile_size} px tiles"
                if tiling == "force"
                else "in one pass"
                if tiling == "off"
                else f"in one pass and in tiles down to {net.lr_multiple} px"
                if state["patch_free"]
                else f"in tiles from {tile_size} down to {net.lr_multiple} px"
            )
            raise RuntimeError(
                f"GTASR ran out of memory upscaling {pw}x{ph} to {pw * net.scale}x{ph * net.scale} "
                f"{mode} (tiling={tiling}). {_oom_advice(tiling, tile_size, net.lr_multiple)}"
            )
        return io.NodeOutput(to_comfy_image(torch.cat(outs)))
