"""Full-reference SR metrics with the BasicSR / SR-paper protocol: PSNR and SSIM on the BT.601 Y channel.

Images are [B, 3, H, W] (or [3, H, W]) RGB in [0, 1]. All arithmetic is float64. Protocol (BasicSR
``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``):
  * Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]) → Y in [16, 235], data range 255;
  * ``crop_border`` pixels removed on each side (the papers use the scale factor);
  * SSIM (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, population statistics, mean
    over the positions where the window lies inside the image ("valid"), identical to scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``.

SSIM ``protocol="pyiqa"`` is the convention of pyiqa's ``ssim`` (``test_y_channel=True``, ``color_space=
'ycbcr'``; GTASR's evaluation, docs/gtasr.md §9), which the papers report: the same SSIM computed on Y **rounded to
integer levels** (MATLAB's ``rgb2ycbcr`` of a uint8 image) with the contrast-structure term clamped at 0.
PSNR needs no protocol switch: pyiqa's ``psnr`` uses unrounded Y, like ours, but adds 1e-8 to the MSE of
[0, 1] images, so it reads 10·log10(1 + 1e-8/MSE) dB lower (< 1e-3 dB below 43 dB) and 80 dB, not +inf,
for identical images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 "studio swing" luma as used by MATLAB rgb2ycbcr and BasicSR.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy/skimage truncation: radius = int(truncate·σ + 0.5) = 5 → 11 taps
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_PROTOCOLS = ("basicsr", "pyiqa")


def _as_batch(images: Tensor, name: str) -> Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be [B, 3, H, W] or [3, H, W] RGB in [0, 1], got {tuple(images.shape)}")
    return images.to(torch.float64)


def rgb_to_y(images: Tensor) -> Tensor:
    """BT.601 Y of RGB in [0, 1]: [B, 3, H, W] → [B, 1, H, W] in [16, 235] (float64)."""
    x = _as_batch(images, "images")
    if x.shape[1] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got {x.shape[1]}")
    w = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True) + Y_OFFSET


def _prepare(
    sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool, quantize: bool
) -> tuple[Tensor, Tensor]:
    """Both images on the 0..255 scale (Y or RGB), quantised/cropped as requested."""
    a, b = _as_batch(sr, "sr"), _as_batch(hr, "hr")
    if a.shape != b.shape:
        raise ValueError(f"sr {tuple(a.shape)} and hr {tuple(b.shape)} must have the same shape")
    if crop_border < 0 or 2 * crop_border >= min(a.shape[-2:]):
        raise ValueError(f"crop_border={crop_border} must be >= 0 and leave pixels of {tuple(a.shape[-2:])}")
    if quantize:  # BasicSR reads 8-bit images: round like a saved PNG
        a, b = (torch.round(t.clamp(0, 1) * DATA_RANGE) / DATA_RANGE for t in (a, b))
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = a * DATA_RANGE, b * DATA_RANGE
    if crop_border:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    return a, b


def psnr(
    sr: Tensor, hr: Tensor, *, crop_border: int = 0, y_channel: bool = True, quantize: bool = False
) -> Tensor:
    """PSNR in dB per image [B] (data range 255 on Y or RGB); +inf for identical images."""
    a, b = _prepare(sr, hr, crop_border, y_channel, quantize)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def gaussian_window(
    sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, device: torch.device | None = None
) -> Tensor:
    """Normalised 1-D Gaussian taps (float64), radius int(truncate·σ + 0.5) as scipy's gaussian_filter."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur_valid(x: Tensor, w: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filtering of [N, 1, H, W]."""
    x = F.conv2d(x, w.view(1, 1, -1, 1))
    return F.conv2d(x, w.view(1, 1, 1, -1))


def ssim_map(a: Tensor, b: Tensor, data_range: float = DATA_RANGE, *, nonnegative_cs: bool = False) -> Tensor:
    """SSIM index map of single-channel images [N, 1, H, W] (float64), 'valid' region only.

    ``nonnegative_cs``: clamp the contrast-structure factor at 0 (pyiqa's convention; it only matters where
    the local structures are anti-correlated).
    """
    w = gaussian_window(device=a.device)
    if min(a.shape[-2:]) < w.numel():
        raise ValueError(
            f"SSIM needs images of at least {w.numel()}x{w.numel()} px, got {tuple(a.shape[-2:])}"
        )
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _blur_valid(a, w), _blur_valid(b, w)
    var_a = _blur_valid(a * a, w) - mu_a**2
    var_b = _blur_valid(b * b, w) - mu_b**2
    cov = _blur_valid(a * b, w) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    if nonnegative_cs:
        cs = cs.clamp(min=0.0)
    return (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs


def ssim(
    sr: Tensor,
    hr: Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    quantize: bool = False,
    protocol: str = "basicsr",
) -> Tensor:
    """Mean SSIM per image [B] on Y (or the mean over R, G, B channels when ``y_channel=False``).

    ``protocol``: "basicsr" (float Y, = scikit-image) or "pyiqa" (Y or RGB rounded to integer levels and the
    contrast-structure term clamped at 0, = pyiqa ``ssim``); see the module docstring.
    """
    if protocol not in SSIM_PROTOCOLS:
        raise ValueError(f"unknown SSIM protocol {protocol!r}; choose from {SSIM_PROTOCOLS}")
    a, b = _prepare(sr, hr, crop_border, y_channel, quantize)
    if protocol == "pyiqa":  # MATLAB-style: the channel is compared on its 8-bit levels
        a, b = torch.round(a), torch.round(b)
    n, c, h, w = a.shape
    m = ssim_map(a.reshape(n * c, 1, h, w), b.reshape(n * c, 1, h, w), nonnegative_cs=protocol == "pyiqa")
    return m.mean(dim=(1, 2, 3)).view(n, c).mean(dim=1)


def psnr_y(sr: Tensor, hr: Tensor, crop_border: int = 0) -> Tensor:
    """PSNR on the BT.601 Y channel (SR-paper protocol), [B]."""
    return psnr(sr, hr, crop_border=crop_border, y_channel=True)


def ssim_y(sr: Tensor, hr: Tensor, crop_border: int = 0) -> Tensor:
    """SSIM on the BT.601 Y channel (SR-paper protocol), [B]."""
    return ssim(sr, hr, crop_border=crop_border, y_channel=True)


__all__ = [
    "DATA_RANGE",
    "SSIM_PROTOCOLS",
    "gaussian_window",
    "psnr",
    "psnr_y",
    "rgb_to_y",
    "ssim",
    "ssim_map",
    "ssim_y",
]
