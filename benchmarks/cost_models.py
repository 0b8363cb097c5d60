"""Real-size models with random weights for the cost benchmarks: FLUX transformer, F16 VAE, and their inputs.

Built on the meta device and materialised on the target device (no float32 copy of FLUX.1-dev's 12 B
parameters); weights are fan-in scaled normals so activations stay finite at any depth. Cost does not depend on
the weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.config import FLUX_F16

__all__ = ["build_flux", "build_vae", "flux_inputs", "random_init_"]


@torch.no_grad()
def random_init_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fan-in scaled normal weights, unit norm scales, zero biases (finite activations at any depth)."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim >= 2:
            p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=g)
        elif name.endswith("weight"):
            p.fill_(1.0)
        else:
            p.zero_()
    return module


def build_flux(cfg: dict[str, Any], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A diffusers FLUX transformer of ``cfg``: built on meta, materialised on ``device``, random weights."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(**cfg)
    # Cast on meta first: materialising in float32 would need 47.6 GB for FLUX.1-dev before the bf16 copy.
    return random_init_(model.to(dtype).to_empty(device=device)).eval().requires_grad_(False)


def build_vae(device: torch.device, dtype: torch.dtype) -> F16VAE:
    """The real-size F16 VAE (FLUX.1 autoencoder, stride-2 input, partitioned decode), random weights."""
    with torch.device("meta"):
        vae = F16VAE(FLUX_F16, decode_mode="partitioned")
    return random_init_(vae.to(dtype).to_empty(device=device)).eval().requires_grad_(False)


def flux_inputs(
    cfg: dict[str, Any], n_img: int, n_txt: int, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """Keyword inputs of the diffusers FLUX transformer: ``n_img`` image tokens on a square grid (their
    (0, row, col) ids), ``n_txt`` text tokens; seeded random values, or uninitialised ones on the meta device."""
    g = None if device.type == "meta" else torch.Generator(device=device).manual_seed(0)
    side = int(math.isqrt(n_img))
    ids = torch.zeros(side, side, 3, device=device)
    ids[..., 1], ids[..., 2] = torch.arange(side, device=device)[:, None], torch.arange(side, device=device)
    return dict(
        hidden_states=torch.randn(1, n_img, cfg["in_channels"], generator=g, device=device).to(dtype),
        encoder_hidden_states=torch.randn(
            1, n_txt, cfg["joint_attention_dim"], generator=g, device=device
        ).to(dtype),
        pooled_projections=torch.zeros(1, cfg["pooled_projection_dim"], device=device, dtype=dtype),
        timestep=torch.full((1,), 0.5, device=device, dtype=dtype),
        img_ids=ids.reshape(-1, 3),
        txt_ids=torch.zeros(n_txt, 3, device=device),
        guidance=torch.full((1,), 3.5, device=device, dtype=dtype),
        return_dict=False,
    )
