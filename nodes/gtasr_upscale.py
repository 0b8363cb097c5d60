"""``GTASR_Upscale``: one-step GTASR super-resolution of an IMAGE batch, whole-image or tiled, to any size."""

from __future__ import annotations

import logging
from typing import Any

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..gtasr_core import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    MAX_PASSES,
    GTASRNet,
    passes_for,
    plan_tiles,
    upscale,
    upscale_to_size,
)
from ..gtasr_core.memory import upscale_memory
from ..gtasr_core.noise import DEFAULT_NOISE, NOISE_KINDS, noise_kind
from ..srkit.images import check_image
from ..srkit.sizing import padded_size, target_size
from .common import as_comfy_image, from_comfy_image
from .gtasr_advice import oom_message
from .gtasr_loader import GTASRModel
from .gtasr_preview import TilePreview
from .runtime import check_cancel, intermediate_batch, is_oom

log = logging.getLogger(__name__)

TILING = ("auto", "off", "force")
TARGETS = ("scale", "long_side")
PROGRESS_UNITS = 1000  # per image and pass
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes any unsigned 64-bit value


def fits_patch_free(need: int, device: torch.device) -> bool:
    """Whether ``need`` bytes (``gtasr_core.memory.upscale_memory``) are free on ``device`` now."""
    return need <= mm.get_free_memory(device)


def _gtasr_net(model: object) -> GTASRNet:
    net = getattr(model, "model", None)
    if not isinstance(net, GTASRNet):
        kind = type(net).__name__ if net is not None else type(model).__name__
        raise TypeError(f"gtasr_model must come from GTASR Load Model, got a {kind}.")
    return net


def _clamped(image: torch.Tensor) -> torch.Tensor:
    """``image`` in [0, 1]: an IMAGE from an HDR/EXR loader or a non-clamping node may overshoot, which GTASR
    (trained on [0, 1] photos) would refuse. Clamped (a copy, the input is left as is) with a warning that says
    by how much."""
    lo, hi = (float(v) for v in torch.aminmax(image))
    if lo >= 0.0 and hi <= 1.0:
        return image
    log.warning(
        "GTASR Upscale: the image has values in [%.3g, %.3g], outside [0, 1]; clamped to [0, 1]", lo, hi
    )
    return image.clamp(0.0, 1.0)


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
                    "always tiles of at most tile_size.",
                ),
                io.Int.Input(
                    "tile_size",
                    default=DEFAULT_TILE,
                    min=64,
                    max=8192,
                    step=64,
                    tooltip="Largest tile side in low-res pixels (a multiple of the network's multiple, 64 "
                    "for the released model; 512 is the released setting). The image is covered by the fewest "
                    "tiles of at most this size, each as small as the overlap allows.",
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
                    tooltip="Output/input size ratio when target is scale. 4 = one network pass (up to 5: one "
                    "pass and a slight enlargement); up to 20 = two passes; then a resize to the exact size.",
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
                io.Combo.Input(
                    "noise",
                    options=list(NOISE_KINDS),
                    default=DEFAULT_NOISE,
                    optional=True,
                    tooltip="How the seed becomes noise. counter: computed on the GPU in milliseconds, "
                    "the same image on any device. torch: the CPU noise sr4k used before, to "
                    "reproduce images made with it (a new seed costs about 0.4 s at 4K).",
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
        noise: str = DEFAULT_NOISE,
    ) -> io.NodeOutput:
        net = _gtasr_net(gtasr_model)
        lr = from_comfy_image(image)
        check_image(lr, purpose="GTASR")
        if tiling not in TILING:
            raise ValueError(f"tiling={tiling!r}; choose one of {', '.join(TILING)}")
        if target not in TARGETS:
            raise ValueError(f"target={target!r}; choose one of {', '.join(TARGETS)}")
        kind = noise_kind(noise)  # a clear error before any work
        if tiling != "off" and overlap >= tile_size:  # auto tiles too when the image does not fit
            raise ValueError(
                f"overlap {overlap} must be smaller than tile_size {tile_size}: lower overlap (the released "
                f"value is tile_size / 8, {tile_size // 8} here) or raise tile_size"
            )
        lr = _clamped(lr)
        h, w = lr.shape[-2:]
        size = target_size(h, w, scale=scale) if target == "scale" else target_size(h, w, long_side=long_side)
        passes = passes_for(h, w, size, net.scale)  # a clear error before any work if the target is too large
        batch, units = lr.shape[0], PROGRESS_UNITS
        pbar = comfy.utils.ProgressBar(batch * passes * units)
        preview = TilePreview()
        state = {"image": 0, "patch_free": True, "lr_hw": (h, w)}

        def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
            # force reserves one tile's working memory (the whole-image buffers stay on the intermediate device), of
            # the tiles the core will run: at most tile_size, smaller where the layout allows (LR 1024 at 512/64:
            # 384). off/auto ask for the whole image, so ComfyUI evicts other models before auto decides.
            ph, pw = x.shape[-2:]
            if tiling == "force":
                first = plan_tiles(
                    *padded_size(ph, pw, net.lr_multiple), tile_size, overlap, net.lr_multiple
                )[0]
                need = upscale_memory(net, first.h, first.w)
            else:
                need = upscale_memory(net, ph, pw)
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
                noise=kind,
            )

        outs, oom, done = intermediate_batch(batch), False, False
        try:
            for i in range(batch):
                state["image"] = i
                check_cancel()  # before each image
                # A resize to the target (any scale but x4) runs on the GPU, and the IMAGE layout is made where the
                # image is: one copy of the final image leaves the device. The core keeps the IMAGE's NHWC layout
                # (lr is its view), so an exact x4 result is an IMAGE without another pass on the host.
                out = upscale_to_size(
                    lr[i : i + 1].float(), size, run_pass, net.scale, resize_device=mm.get_torch_device()
                )
                outs.add(as_comfy_image(out))
            done = True
        except Exception as e:
            if not is_oom(e):
                raise
            oom = True  # raised below, outside the except block, so the failed step's tensors are freed
        finally:
            # A failed or cancelled run hands its cached blocks back at once. After a success the allocator keeps
            # them for the next image (ComfyUI counts them as free and empties the cache between prompts itself).
            if not done:
                mm.soft_empty_cache()
        if oom:
            msg = oom_message(
                tiling, tile_size, net.lr_multiple, net.scale, state["lr_hw"], state["patch_free"]
            )
            raise RuntimeError(msg)
        return io.NodeOutput(outs.result())
