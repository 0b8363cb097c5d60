"""``OP4KSR_Upscale``: one-step, patch-free upscale on a FLUX MODEL with an (F16) VAE."""

from __future__ import annotations

import logging
from typing import Any

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io, ui

from ..op4ksr_core.geometry import pixels_per_token
from ..op4ksr_core.onestep import (
    DEFAULT_T_STAR,
    DEFAULT_TARGET_LONG_SIDE,
    INPUT_MODES,
    OneStepConfig,
    pad_for_crop,
    target_size,
    upsample_bicubic,
)
from ..op4ksr_core.settings import AUTO, from_widgets, resolve
from ..srkit.attention_priority import attention_priority
from ..srkit.color import METHODS, color_correct
from ..srkit.images import check_image
from ..srkit.sizing import resize_exact
from .common import from_comfy_image, to_comfy_image
from .flux_model import (
    empty_flux_conditioning,
    flux_diffusion_model,
    one_step_sample,
    with_guidance_default,
)
from .op4ksr_settings import BASE_MODEL_WARNING, model_settings
from .op4ksr_vae import VAE_TILING, check_vae_tiling, decode, encode
from .runtime import check_cancel, intermediate_batch, is_oom

log = logging.getLogger(__name__)

STAGES_PER_IMAGE = 4  # resize, encode, transformer step, decode


def _check_vae(vae, latent_channels: int) -> int:  # noqa: ANN001 - comfy.sd.VAE
    channels = getattr(vae, "latent_channels", None)
    if channels != latent_channels:
        raise ValueError(
            f"the VAE makes {channels}-channel latents but the FLUX model takes {latent_channels}; "
            "connect OP4KSR Load F16 VAE (or a FLUX VAE), not an SD/SDXL VAE."
        )
    return vae.spacial_compression_encode()


def _stage_done(pbar: comfy.utils.ProgressBar) -> None:
    pbar.update(1)
    check_cancel()  # explicit: newer ComfyUI throttles progress updates, and with them its own cancel check


def upscale_one(
    model: Any,  # a ComfyUI ModelPatcher (FLUX)
    vae: Any,  # a comfy.sd.VAE
    lr: torch.Tensor,
    size: tuple[int, int],
    cond: list,
    cfg: OneStepConfig,
    pbar: comfy.utils.ProgressBar,
    vae_tiling: str = "never",
) -> torch.Tensor:
    """One ``[1, 3, h, w]`` image in [0, 1] -> ``[1, 3, H, W]`` (steps reported on ``pbar``, cancel checked).

    The VAE runs untiled unless ``vae_tiling`` says otherwise (``op4ksr_vae``): ComfyUI's ``VAE.encode``/
    ``decode`` would silently fall back to tiles on out-of-memory."""
    check_cancel()
    inner = flux_diffusion_model(model)
    multiple = pixels_per_token(_check_vae(vae, inner.params.in_channels), inner.patch_size)
    padded, (h, w) = pad_for_crop(upsample_bicubic(lr.to(mm.get_torch_device()), size), multiple)
    _stage_done(pbar)
    latent = encode(vae, padded.movedim(1, -1), vae_tiling)
    _stage_done(pbar)
    with attention_priority(mm.get_torch_device()):
        latent = one_step_sample(model, latent, cond, cfg)
    _stage_done(pbar)
    image = decode(vae, latent, vae_tiling)[..., :h, :w]
    _stage_done(pbar)
    return image


class Upscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OP4KSR_Upscale",
            display_name="OP4KSR Upscale (one step, patch-free)",
            category="sr4k/op4ksr",
            description="Upscales the whole image in one FLUX step, no tiles: bicubic to the target size, F16 VAE "
            "encode, one transformer call at t*, decode. 16:9, 21:9 and portrait targets keep their aspect. "
            "RGBA keeps its alpha (resized bicubically, antialiased when shrinking).",
            inputs=[
                io.Model.Input("model", tooltip="OP4KSR model (OP4KSR Load Model), or any FLUX model + RFR."),
                io.Vae.Input("vae", tooltip="The F16 VAE (OP4KSR Load F16 VAE)."),
                io.Image.Input(
                    "image", tooltip="Low-resolution image(s), RGB or RGBA (alpha is resized, not generated)."
                ),
                io.Combo.Input(
                    "target",
                    options=["long_side", "scale"],
                    default="long_side",
                    tooltip="Size the output by its long side in pixels, or by a scale factor.",
                ),
                io.Int.Input(
                    "long_side",
                    default=DEFAULT_TARGET_LONG_SIDE,
                    min=64,
                    max=16384,
                    step=32,
                    tooltip="Output long side in pixels when target is long_side (4096 = 4K).",
                ),
                io.Float.Input(
                    "scale",
                    default=4.0,
                    min=0.25,
                    max=32.0,
                    step=0.25,
                    tooltip="Output/input size ratio when target is scale.",
                ),
                io.Float.Input(
                    "t_star",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Flow time of the single model call. 0 = auto: the value the OP4KSR "
                    f"weights were trained with, else {DEFAULT_T_STAR}. Set it only to override.",
                ),
                io.Combo.Input(
                    "input_mode",
                    options=[AUTO, *INPUT_MODES],
                    default=AUTO,
                    tooltip="auto: what the OP4KSR weights were trained with, else direct. direct: "
                    "the LR latent itself at t*. flow: start from (1 - t*) x LR latent, as ComfyUI's "
                    "sampler does with no noise.",
                ),
                io.Combo.Input(
                    "color_correction",
                    options=list(METHODS),
                    default="wavelet",
                    tooltip="Transfer the input's colour onto the result (fixes colour shift).",
                ),
                io.Conditioning.Input(
                    "conditioning",
                    optional=True,
                    tooltip="Optional FLUX text conditioning; empty = zero conditioning. Without a FluxGuidance "
                    "value, the OP4KSR weights' guidance applies (3.5 if they carry none).",
                ),
                io.Combo.Input(
                    "vae_tiling",
                    options=list(VAE_TILING),
                    default="never",
                    optional=True,
                    tooltip="never: VAE encode/decode on the whole image (the method; out of memory is "
                    "an error). on_oom: retry in tiles after an out-of-memory error. always: tiles. "
                    "F16 VAE tiles are exact row bands: no seams, same result, slower.",
                ),
            ],
            outputs=[io.Image.Output(tooltip="The upscaled image(s).")],
        )

    @classmethod
    def execute(
        cls,
        model: Any,  # a ComfyUI ModelPatcher (FLUX)
        vae: Any,  # a comfy.sd.VAE
        image: torch.Tensor,
        target: str,
        long_side: int,
        scale: float,
        t_star: float,
        input_mode: str,
        color_correction: str,
        conditioning: list | None = None,
        vae_tiling: str = "never",
    ) -> io.NodeOutput:
        weights = model_settings(model)
        chosen = resolve(from_widgets(t_star=t_star, input_mode=input_mode), weights)
        cfg = OneStepConfig(t_star=chosen.t_star, input_mode=chosen.input_mode, guidance=chosen.guidance)
        if weights is None:
            log.warning("OP4KSR Upscale: %s", BASE_MODEL_WARNING)
            notice = f"Warning: {BASE_MODEL_WARNING}"
        else:
            notice = f"OP4KSR weights' settings: t* {cfg.t_star:g}, input {cfg.input_mode}, guidance {cfg.guidance:g}."
        check_vae_tiling(vae_tiling)
        lr = from_comfy_image(image)
        check_image(lr, purpose="OP4KSR")
        alpha, lr = lr[:, 3:], lr[:, :3]  # alpha: empty for RGB
        h, w = lr.shape[-2:]
        size = (
            target_size(h, w, long_side=long_side)
            if target == "long_side"
            else target_size(h, w, scale=scale)
        )
        cond = (
            with_guidance_default(conditioning, cfg.guidance)
            if conditioning
            else empty_flux_conditioning(model, cfg.empty_text_tokens, cfg.guidance)
        )
        pbar = comfy.utils.ProgressBar(STAGES_PER_IMAGE * lr.shape[0])
        outs = intermediate_batch(lr.shape[0])
        for i in range(lr.shape[0]):
            oom = False
            try:
                out = upscale_one(model, vae, lr[i : i + 1], size, cond, cfg, pbar, vae_tiling)
            except Exception as e:
                if not is_oom(e):
                    raise
                oom = True  # raised below, outside the except block, so the failed step's tensors are freed
            if oom:
                mm.soft_empty_cache()
                tiles = (
                    "" if vae_tiling != "never" else ", or set vae_tiling to on_oom (exact VAE tiles, slower)"
                )
                raise RuntimeError(
                    f"out of memory upscaling to {size[1]}x{size[0]} in one pass. Try weight_dtype fp8 in the "
                    f"loader, a smaller long_side, or start ComfyUI with --lowvram{tiles}; patch-free means the "
                    "whole image is held at once."
                )
            # Colour correction at output size is seconds on a CPU and milliseconds on the GPU.
            dev = mm.get_torch_device()
            out = color_correct(out.float().to(dev), lr[i : i + 1].float().to(dev), color_correction)
            if alpha.shape[1]:
                out = torch.cat([out, resize_exact(alpha[i : i + 1].float().to(dev), size)], dim=1)
            # The IMAGE layout is made on the device, then one copy (pinned: a DMA) leaves it.
            outs.add(to_comfy_image(out))
        return io.NodeOutput(outs.result(), ui=ui.PreviewText(notice).as_dict())
