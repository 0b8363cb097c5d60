"""Helpers for the GTASR tests: the fixtures' deterministic init, a tiny config and a seam metric."""

from __future__ import annotations

import math
import zlib

import torch
from torch import Tensor, nn

from sr4k.gtasr_core import GTASRConfig

# Two levels, one block each, Swin everywhere: LR multiple 8, ~0.9 M parameters, fast on CPU.
TINY = GTASRConfig(model_channels=32, channel_mult=(1, 2), num_blocks=1, train_resolution=16,
                   attn_resolutions=(16, 8), channel_mult_emb=2, swin_embed_dim=32, swin_num_heads=2,
                   swin_window=4)


@torch.no_grad()
def deterministic_init_(module: nn.Module) -> nn.Module:
    """The golden fixtures' init (shared/fixtures/README.md): per-key CRC32-seeded float64 normals."""
    for key, param in module.state_dict(keep_vars=True).items():
        if not isinstance(param, nn.Parameter):
            continue  # buffers keep their computed values
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        t = torch.randn(param.shape, generator=gen, dtype=torch.float64)
        if param.ndim >= 2:
            value = t / math.sqrt(math.prod(param.shape[1:]))
        elif key.endswith("weight"):
            value = 1 + 0.05 * t
        else:
            value = 0.05 * t
        param.copy_(value.to(torch.float32))
    return module


def border_ratio(image: Tensor, borders_x: list[int], borders_y: list[int]) -> float:
    """Seam metric: mean |step| across the given tile borders / mean |step| between other pixels.

    A border at column j is the step image[..., j] - image[..., j - 1] (rows likewise); ~1 means no seam.
    """
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # [W-1], step j-1 -> j
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    steps, at_border = [], []
    for prof, borders in ((dx, borders_x), (dy, borders_y)):
        mask = torch.zeros_like(prof, dtype=torch.bool)
        mask[[b - 1 for b in borders]] = True
        steps.append(prof[~mask].mean())
        if borders:
            at_border.append(prof[mask].mean())
    return float(torch.stack(at_border).mean() / torch.stack(steps).mean())
