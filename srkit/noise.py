"""Additive Gaussian and Poisson (shot) noise of the Real-ESRGAN degradation model, batched and seeded.

Images are [B, 3, H, W] in [0, 1]; per-image parameters are [B] tensors. ``gray`` [B] (bool) selects, per image,
noise shared by the three channels (luminance-only noise) instead of independent colour noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .images import luma

__all__ = [
    "LEVELS_8BIT",
    "add_noise",
    "gaussian_noise",
    "intensity_levels",
    "poisson_noise",
    "rgb_to_gray",
]


LEVELS_8BIT = 255


def _check(images: Tensor, per_image: Tensor, name: str) -> Tensor:
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    per_image = torch.as_tensor(per_image, device=images.device).reshape(-1)
    if per_image.numel() not in (1, images.shape[0]):
        raise ValueError(
            f"{name} must be a scalar or one value per image (B={images.shape[0]}), "
            f"got {per_image.numel()} values"
        )
    return per_image.expand(images.shape[0])


rgb_to_gray = luma  # BT.601 luma [B, 3, H, W] -> [B, 1, H, W], used for gray Poisson noise


def gaussian_noise(images: Tensor, sigma: Tensor, gray: Tensor, generator: torch.Generator) -> Tensor:
    """Zero-mean Gaussian noise with per-image std ``sigma`` (in [0, 1] units; Real-ESRGAN uses σ/255)."""
    b, c, h, w = images.shape
    sigma = _check(images, sigma, "sigma").to(images.dtype).view(b, 1, 1, 1)
    gray = _check(images, gray, "gray").view(b, 1, 1, 1)
    # Both draws happen for every image so the random stream does not depend on the gray choices.
    g = generator
    colour = torch.randn(b, c, h, w, generator=g, device=g.device, dtype=images.dtype).to(images.device)
    mono = torch.randn(b, 1, h, w, generator=g, device=g.device, dtype=images.dtype).to(images.device)
    return torch.where(gray, mono.expand(b, c, h, w), colour) * sigma


def intensity_levels(images: Tensor) -> Tensor:
    """Per image, 2^⌈log2(#distinct 8-bit values)⌉ [B]: the photon-count scale of Real-ESRGAN's Poisson noise."""
    b = images.shape[0]
    codes = torch.round(images.clamp(0, 1) * LEVELS_8BIT).long().reshape(b, -1)
    hist = torch.zeros(b, LEVELS_8BIT + 1, device=images.device).scatter_(1, codes, 1.0)
    distinct = hist.sum(dim=1).clamp(min=1)
    return torch.exp2(torch.ceil(torch.log2(distinct)))


def poisson_noise(
    images: Tensor, scale: Tensor, gray: Tensor, generator: torch.Generator, levels: Tensor | None = None
) -> Tensor:
    """Shot noise: (Poisson(x·L)/L − x)·scale per image, with L = ``levels`` (default :func:`intensity_levels`).

    The variance is scale²·x/L, i.e. it grows linearly with intensity. As in Real-ESRGAN the mean image x is the
    8-bit-quantised input; gray noise uses the BT.601 luma and is shared by all channels.
    """
    b, c, h, w = images.shape
    scale = _check(images, scale, "scale").to(images.dtype).view(b, 1, 1, 1)
    gray = _check(images, gray, "gray").view(b, 1, 1, 1)
    x = torch.round(images.clamp(0, 1) * LEVELS_8BIT) / LEVELS_8BIT
    lum = torch.round(rgb_to_gray(x).clamp(0, 1) * LEVELS_8BIT) / LEVELS_8BIT
    if levels is None:
        lv_col, lv_gray = intensity_levels(x), intensity_levels(lum)
    else:
        lv_col = lv_gray = _check(images, levels, "levels").to(images.dtype)
    lv_col, lv_gray = lv_col.view(b, 1, 1, 1), lv_gray.view(b, 1, 1, 1)
    g = generator
    colour = torch.poisson((x * lv_col).to(g.device), generator=g).to(images.device) / lv_col - x
    mono = torch.poisson((lum * lv_gray).to(g.device), generator=g).to(images.device) / lv_gray - lum
    return torch.where(gray, mono.expand(b, c, h, w), colour) * scale


def add_noise(images: Tensor, noise: Tensor, clip: bool = True) -> Tensor:
    """images + noise, clipped to [0, 1] (Real-ESRGAN clips, does not round, inside the pipeline)."""
    out = images + noise
    return out.clamp(0, 1) if clip else out
