"""A small F16 VAE for tests of the banded (tiled) VAE: the F16 geometry at a fraction of the width."""

from __future__ import annotations

import math

import torch

from sr4k.op4ksr_core.vae import F16VAE, FLUX_F16, VaeConfig
from tiny_models import deterministic_tensor

# Stride-2 conv_in, three ×2 levels, final nearest ×2 (16x per side), 32/64 channels in 8 groups.
SMALL = VaeConfig(**{**FLUX_F16.__dict__, "block_out_channels": (32, 32, 64, 64), "norm_num_groups": 8})


def small_f16_vae(decode_mode: str = "partitioned") -> F16VAE:
    """SMALL with deterministic weights scaled to unit gain (norm weights near 1), in eval mode."""
    model = F16VAE(SMALL, decode_mode=decode_mode).eval()
    with torch.no_grad():
        for key, p in model.state_dict().items():
            scale = 1 / math.sqrt(math.prod(p.shape[1:])) if p.ndim > 1 else 0.1
            p.copy_(
                deterministic_tensor(key, tuple(p.shape)) * scale
                + (1.0 if key.endswith("norm.weight") else 0)
            )
    return model


def perturbed_vae(config: VaeConfig, seed: int = 0, scale: float = 0.05) -> F16VAE:
    """An F16VAE of ``config`` in eval mode whose default init is perturbed by ``scale``·N(0, 1) (seeded), so
    norm scales and shifts and biases are non-trivial: what the optimised-vs-reference tests compare on."""
    torch.manual_seed(seed)
    vae = F16VAE(config).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(scale * torch.randn_like(p))
    return vae
