"""One FLUX transformer call on a VAE latent (diffusers ``FluxTransformer2DModel``), and the RFR swap.

Shared by the headless pipeline (``op4ksr_core.headless``), the trainer and the benchmarks.
"""

from __future__ import annotations

import torch

from ..embedder import RFRPosEmbed
from ..geometry import pixels_per_token
from ..onestep import OneStepConfig, pack_latents, unpack_latents
from ..rfr import RFRConfig
from ..rope import flux_image_ids, flux_text_ids

__all__ = ["patch_size_of", "set_rfr", "token_pixels", "velocity"]


def set_rfr(transformer: torch.nn.Module, config: RFRConfig) -> torch.nn.Module:
    """Swap ``transformer.pos_embed`` for an RFR embedder (in place; returns the transformer)."""
    base = transformer.pos_embed
    original = getattr(base, "original", base)  # re-applying RFR starts from the stock embedder
    transformer.pos_embed = RFRPosEmbed.from_module(original, config)
    transformer.pos_embed.original = original
    return transformer


def patch_size_of(transformer: torch.nn.Module, latent_channels: int) -> int:
    """FLUX packs ``p x p`` latent pixels per token: ``in_channels = latent_channels * p^2``."""
    per_token = transformer.config.in_channels // latent_channels
    p = int(round(per_token**0.5))
    if p * p * latent_channels != transformer.config.in_channels:
        raise ValueError(
            f"transformer in_channels {transformer.config.in_channels} is not {latent_channels} x p^2; "
            "the VAE and the transformer do not belong together."
        )
    return p


def token_pixels(transformer: torch.nn.Module, vae: torch.nn.Module) -> int:
    """Pixels per token side for this transformer and VAE pair: the multiple an image side must have."""
    return pixels_per_token(vae.downscale, patch_size_of(transformer, vae.config.latent_channels))


def velocity(
    transformer: torch.nn.Module, x_t: torch.Tensor, t_star: float, config: OneStepConfig
) -> torch.Tensor:
    """``v(x_t, t*)`` for a model-space latent ``[B, C, h, w]`` with zero text conditioning."""
    b, c, h, w = x_t.shape
    p = patch_size_of(transformer, c)
    param = next(transformer.parameters())
    tokens = pack_latents(x_t, p).to(param.dtype)
    ctx = torch.zeros(b, config.empty_text_tokens, transformer.config.joint_attention_dim)
    pooled = torch.zeros(b, transformer.config.pooled_projection_dim)
    t = torch.full((b,), t_star)
    guidance = torch.full((b,), config.guidance) if transformer.config.guidance_embeds else None
    out = transformer(
        hidden_states=tokens,
        encoder_hidden_states=ctx.to(param),
        pooled_projections=pooled.to(param),
        timestep=t.to(param),
        img_ids=flux_image_ids(h // p, w // p).to(param.device),
        txt_ids=flux_text_ids(config.empty_text_tokens).to(param.device),
        guidance=None if guidance is None else guidance.to(param),
        return_dict=False,
    )[0]
    return unpack_latents(out.float(), (h, w), p)
