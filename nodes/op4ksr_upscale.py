"""``OP4KSR_Upscale``: one-step, patch-free upscale on a FLUX MODEL with an (F16) VAE."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..op4ksr_core.geometry import pixels_per_token
from ..op4ksr_core.onestep import (
    DEFAULT_T_STAR,
    DEFAULT_TARGET_LONG_SIDE,
    INPUT_MODES,
    OneStepConfig,
    pad_to_multiple,
    target_size,
    upsample_bicubic,
)
from ..srkit.color import METHODS, check_image_batch, color_correct
from .common import from_comfy_image, to_comfy_image
from .flux_model import empty_flux_conditioning, flux_diffusion_model, one_step_sample
from .runtime import check_cancel, is_oom

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


def upscale_one(model, vae, lr: torch.Tensor, size: tuple[int, int], cond: list, cfg: OneStepConfig,  # noqa: ANN001
                pbar: comfy.utils.ProgressBar) -> torch.Tensor:  # fmt: skip
    """One ``[1, 3, h, w]`` image in [0, 1] -> ``[1, 3, H, W]`` (steps reported on ``pbar``, cancel checked)."""
    check_cancel()
    inner = flux_diffusion_model(model)
    multiple = pixels_per_token(_check_vae(vae, inner.params.in_channels), inner.patch_size)
    padded, (h, w) = pad_to_multiple(upsample_bicubic(lr.to(mm.get_torch_device()), size), multiple)
    _stage_done(pbar)
    latent = vae.encode(padded.movedim(1, -1))
    _stage_done(pbar)
    latent = one_step_sample(model, latent, cond, cfg)
    _stage_done(pbar)
    image = vae.decode(latent).movedim(-1, 1)[..., :h, :w]
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
            "encode, one transformer call at t*, decode. 16:9, 21:9 and portrait targets keep their aspect.",
            inputs=[
                io.Model.Input("model", tooltip="OP4KSR model (OP4KSR Load Model), or any FLUX model + RFR."),
                io.Vae.Input("vae", tooltip="The F16 VAE (OP4KSR Load F16 VAE)."),
                io.Image.Input("image", tooltip="Low-resolution image(s)."),
                io.Combo.Input("target", options=["long_side", "scale"], default="long_side",
                               tooltip="Size the output by its long side in pixels, or by a scale factor."),
                io.Int.Input("long_side", default=DEFAULT_TARGET_LONG_SIDE, min=64, max=16384, step=32,
                             tooltip="Output long side in pixels when target is long_side (4096 = 4K)."),
                io.Float.Input("scale", default=4.0, min=0.25, max=32.0, step=0.25,
                               tooltip="Output/input size ratio when target is scale."),
                io.Float.Input("t_star", default=DEFAULT_T_STAR, min=0.01, max=1.0, step=0.01,
                               tooltip="Flow time of the single model call (the paper does not publish it; "
                               "use the value your OP4KSR weights were trained with)."),
                io.Combo.Input("input_mode", options=list(INPUT_MODES), default="flow",
                               tooltip="flow: start from (1 - t*) x LR latent, as ComfyUI's sampler does with no "
                               "noise. direct: the LR latent itself at t*. Match the training setting."),
                io.Combo.Input("color_correction", options=list(METHODS), default="wavelet",
                               tooltip="Transfer the input's colour onto the result (fixes colour shift)."),
                io.Conditioning.Input("conditioning", optional=True,
                                      tooltip="Optional FLUX text conditioning; empty = zero conditioning."),
            ],  # fmt: skip
            outputs=[io.Image.Output(tooltip="The upscaled image(s).")],
        )

    @classmethod
    def execute(
        cls, model, vae, image, target: str, long_side: int, scale: float, t_star: float,  # noqa: ANN001
        input_mode: str, color_correction: str, conditioning=None,  # noqa: ANN001
    ) -> io.NodeOutput:  # fmt: skip
        cfg = OneStepConfig(t_star=t_star, input_mode=input_mode)
        lr = from_comfy_image(image)
        check_image_batch(lr, "image")
        lr = lr[:, :3]
        h, w = lr.shape[-2:]
        size = target_size(h, w, long_side=long_side) if target == "long_side" else target_size(h, w, scale=scale)
        cond = conditioning or empty_flux_conditioning(model, cfg.empty_text_tokens, cfg.guidance)
        pbar = comfy.utils.ProgressBar(STAGES_PER_IMAGE * lr.shape[0])
        outs = []
        for i in range(lr.shape[0]):
            try:
                out = upscale_one(model, vae, lr[i : i + 1], size, cond, cfg, pbar)
            except Exception as e:
                if not is_oom(e):
                    raise
                raise RuntimeError(
                    f"out of memory upscaling to {size[1]}x{size[0]} in one pass. Try weight_dtype fp8 in the "
                    "loader, a smaller long_side, or start ComfyUI with --lowvram; patch-free means the whole "
                    "image is held at once."
                ) from e
            # Colour correction at output size is seconds on a CPU and milliseconds on the GPU.
            dev = mm.get_torch_device()
            outs.append(color_correct(out.float().to(dev), lr[i : i + 1].float().to(dev), color_correction).cpu())
        return io.NodeOutput(to_comfy_image(torch.cat(outs)))
