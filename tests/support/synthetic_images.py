"""Deterministic synthetic test images shared by the metric, periodicity and degradation tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def natural_image(
    h: int, w: int, seed: int = 0, batch: int = 1, scales: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
) -> torch.Tensor:
    """Smooth multi-scale ("1/f"-like) random image in [0, 1], ``[B, 3, H, W]``: no period, no seams."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(batch, 3, h, w)
    for s in scales:
        n = torch.randn(batch, 3, h // s + 2, w // s + 2, generator=g)
        img += F.interpolate(n, size=(h, w), mode="bicubic", align_corners=False) * s**0.8
    lo, hi = img.amin(dim=(1, 2, 3), keepdim=True), img.amax(dim=(1, 2, 3), keepdim=True)
    return (img - lo) / (hi - lo)
