"""OP4KSR one-step upscale without ComfyUI: diffusers' ``FluxTransformer2DModel`` + our F16 VAE.

The same computation as the ComfyUI path (``nodes/op4ksr_upscale.py``): bicubic to the target,
pad to the token multiple, encode, ``x0 = x_{t*} - t* v``, decode, crop, colour-correct. Used by
the CLI, the trainer and the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..srkit import perf
from ..srkit.attention_priority import attention_priority
from ..srkit.color import color_correct
from ..srkit.images import Progress, check_image
from ..srkit.transfer import ImageBatch
from ..srkit.weights import load_state_dict
from .flux.forward import set_rfr, token_pixels, velocity
from .flux.loader import load_flux_transformer
from .lora import merge_comfy_lora
from .onestep import (
    DEFAULT_TARGET_LONG_SIDE,
    OneStepConfig,
    one_step_input,
    one_step_x0,
    pad_for_crop,
    target_size,
    upsample_bicubic,
)
from .rfr import RFRConfig
from .settings import AUTO, auto_decode_mode, files_settings, read_settings
from .vae import F16VAE
from .vae.loader import load_f16_vae

__all__ = [
    "load_pipeline",
    "upscale_image",
]


def load_pipeline(
    flux_path: str | Path,
    vae_path: str | Path,
    *,
    decode_mode: str = "auto",
    rfr: RFRConfig | None = None,
    lora: str | Path | None = None,
    lora_strength: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, F16VAE]:
    """Transformer and F16 VAE from files, the way the CLI and the benchmarks load them.

    ``flux_path``: FLUX transformer (BFL/ComfyUI or diffusers keys); ``vae_path``: FLUX VAE weights (``aligned``
    suits the raw ``ae.safetensors``, ``partitioned`` Diffusion-4K F16 decoders; ``auto``: the VAE file's
    ``sr4k.op4ksr`` metadata, then the LoRA's and the transformer's, then the key layout's default);
    ``lora``: an OP4KSR LoRA merged into the transformer; ``rfr``: the RoPE embedder installed (None keeps
    FLUX's stock RoPE).
    """
    for what, path in (("FLUX transformer", flux_path), ("FLUX VAE", vae_path), ("LoRA", lora)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
    transformer = load_flux_transformer(flux_path, dtype=dtype, device=device)
    if lora is not None:
        merge_comfy_lora(transformer, lora, lora_strength)
    if rfr is not None:
        set_rfr(transformer, rfr)
    vae_sd = load_state_dict(vae_path)
    if decode_mode == AUTO:
        decode_mode = auto_decode_mode(vae_sd, read_settings(vae_path), files_settings(lora, flux_path))
    vae = load_f16_vae(vae_sd, decode_mode, dtype=dtype, device=device)
    return transformer, vae


@torch.no_grad()
def upscale_image(
    transformer: torch.nn.Module,
    vae: F16VAE,
    lr: torch.Tensor,
    *,
    long_side: int | None = None,
    scale: float | None = None,
    config: OneStepConfig | None = None,
    color: str = "wavelet",
    progress: Progress | None = None,
) -> torch.Tensor:
    """Upscale ``lr`` ``[B, 3, h, w]`` in [0, 1] to ``[B, 3, H, W]`` in [0, 1], one image at a time."""
    config = config or OneStepConfig()
    check_image(lr, purpose="OP4KSR")
    lr = lr[:, :3].float()
    if long_side is None and scale is None:
        long_side = DEFAULT_TARGET_LONG_SIDE
    size = target_size(*lr.shape[-2:], long_side=long_side, scale=scale)
    multiple = token_pixels(transformer, vae)
    device = next(transformer.parameters()).device
    outs = ImageBatch(lr.shape[0], "cpu", pinned=perf.current().pinned_output)
    for i in range(lr.shape[0]):
        # Everything at output size (bicubic, padding, colour) stays on the model's device: on CPU
        # these 4K maps cost seconds, several times the transformer call itself.
        lr_i = lr[i : i + 1].to(device)
        padded, (h, w) = pad_for_crop(upsample_bicubic(lr_i, size), multiple)
        z = vae.to_model_latent(vae.encode((padded * 2 - 1).to(vae.device)).float())
        x_t = one_step_input(z, config.t_star, config.input_mode).to(device)
        with attention_priority(device):
            v = velocity(transformer, x_t, config.t_star, config)
        x0 = one_step_x0(x_t, v, config.t_star)
        image = vae.decode(vae.from_model_latent(x0).to(vae.device)).float()
        image = ((image + 1) / 2).clamp(0, 1)[..., :h, :w].to(device)
        outs.add(color_correct(image, lr_i, color))
        if progress is not None:
            progress(i + 1, lr.shape[0])
    return outs.result()
