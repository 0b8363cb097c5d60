"""Colour correction of an upscaled image towards a reference (usually the low-res input).

Diffusion SR drifts in colour; the standard fix transfers the reference's low-frequency colour onto
the upscaled result. All functions take and return float images ``[B, C, H, W]`` in ``[0, 1]``;
``C`` is 3 (RGB) or 4 (RGBA, alpha passed through from the upscaled image).

Methods:
    ``wavelet``  high frequencies of the upscaled image + low frequencies of the reference
                 (the colour fix of StableSR / most diffusion SR repos, re-derived here).
    ``adain``    per-channel mean/std matching in RGB (AdaIN statistics transfer).
    ``lab``      mean/std matching in Oklab, then gamut mapping by chroma reduction. Oklab instead of
                 CIELAB because CIELAB's constant-hue lines bend saturated blues towards purple, and
                 per-channel RGB clipping after the transfer shifts hue; both are avoided here.
    ``none``     the upscaled image unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from . import perf
from .images import check_image

__all__ = [
    "METHODS",
    "Method",
    "WAVELET_LEVELS",
    "adain",
    "color_correct",
    "lab_transfer",
    "linear_to_srgb",
    "oklab_to_linear_rgb",
    "oklab_to_rgb",
    "rgb_to_oklab",
    "srgb_to_linear",
    "wavelet",
    "wavelet_split",
]


Method = Literal["wavelet", "adain", "lab", "none"]
METHODS: tuple[str, ...] = ("wavelet", "adain", "lab", "none")

_EPS = 1e-8
WAVELET_LEVELS = 5

# Oklab (Björn Ottosson, 2020): linear sRGB -> LMS -> cube root -> Lab.
_RGB_TO_LMS = torch.tensor(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=torch.float64,
)
_LMS_TO_LAB = torch.tensor(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=torch.float64,
)


def _match_batch(reference: torch.Tensor, batch: int) -> torch.Tensor:
    if reference.shape[0] == batch:
        return reference
    if reference.shape[0] == 1:
        return reference.expand(batch, -1, -1, -1)
    raise ValueError(
        f"batch size mismatch: {batch} upscaled image(s) but {reference.shape[0]} reference image(s). "
        "Give one reference for all images, or exactly one reference per image."
    )


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1)[..., None, None], flat.std(-1, unbiased=False)[..., None, None]


def adain(content: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel mean/std transfer: ``(x - mu_x) / sigma_x * sigma_r + mu_r``. ``[B, C, H, W]``."""
    mu_c, sd_c = _channel_stats(content)
    mu_r, sd_r = _channel_stats(reference)
    # The clamp only matters for (near-)constant content, where (x - mu) is ~0 anyway.
    return (content - mu_c) * (sd_r / sd_c.clamp_min(_EPS)) + mu_r


def _blur_dilated(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur with holes (a trous), replicate padding. ``[B, C, H, W]``."""
    k1 = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (k1[:, None] * k1[None, :] / 16.0).expand(x.shape[1], 1, 3, 3)
    # Replicate padding needs pad < size; clamp the dilation for tiny images.
    d = max(1, min(dilation, x.shape[-1] - 1, x.shape[-2] - 1))
    padded = F.pad(x, (d, d, d, d), mode="replicate")
    return F.conv2d(padded, kernel, dilation=d, groups=x.shape[1])


def _blur_dilated_separable(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """:func:`_blur_dilated` as a horizontal then a vertical [1, 2, 1] / 4 pass (the 3x3 binomial is their
    outer product, and replicate padding commutes with it): 6 taps per pixel instead of 9, same result to
    float rounding."""
    k1 = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    c = x.shape[1]
    d = max(1, min(dilation, x.shape[-1] - 1, x.shape[-2] - 1))
    x = F.conv2d(
        F.pad(x, (d, d, 0, 0), mode="replicate"),
        k1.view(1, 1, 1, 3).expand(c, 1, 1, 3),
        dilation=(1, d),
        groups=c,
    )
    return F.conv2d(
        F.pad(x, (0, 0, d, d), mode="replicate"),
        k1.view(1, 1, 3, 1).expand(c, 1, 3, 1),
        dilation=(d, 1),
        groups=c,
    )


def wavelet_split(x: torch.Tensor, levels: int = WAVELET_LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into ``(high, low)`` with ``high + low == x`` by ``levels`` a-trous blurs (dilation 2^i)."""
    if perf.current().separable_color:
        # The high bands telescope: sum_i (low_i - low_{i+1}) = x - low_levels, one subtraction.
        low = x
        for i in range(levels):
            low = _blur_dilated_separable(low, 2**i)
        return x - low, low
    low = x
    high = torch.zeros_like(x)
    for i in range(levels):
        blurred = _blur_dilated(low, 2**i)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet(content: torch.Tensor, reference: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """High frequencies of ``content`` plus low frequencies of ``reference`` (resized to content)."""
    high, _ = wavelet_split(content, levels)
    _, low = wavelet_split(reference, levels)
    return high + low


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB transfer function, inverse (IEC 61966-2-1)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """sRGB transfer function, forward (IEC 61966-2-1)."""
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0) ** (1 / 2.4) - 0.055)


def rgb_to_oklab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``[B, 3, H, W]`` in [0, 1] to Oklab ``(L, a, b)``; computed in float64."""
    lin = srgb_to_linear(rgb.double())
    lms = torch.einsum("ij,bjhw->bihw", _RGB_TO_LMS.to(lin.device), lin)
    return torch.einsum("ij,bjhw->bihw", _LMS_TO_LAB.to(lin.device), torch.sign(lms) * lms.abs() ** (1 / 3))


def oklab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Oklab ``[B, 3, H, W]`` to *linear* RGB (may lie outside [0, 1]); float64."""
    lms_ = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_LMS_TO_LAB).to(lab.device), lab.double())
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_LMS).to(lab.device), lms_**3)


def oklab_to_rgb(lab: torch.Tensor, gamut_steps: int = 12) -> torch.Tensor:
    """Oklab to sRGB in [0, 1], mapping out-of-gamut pixels by reducing chroma at constant L and hue.

    Per-channel clipping would rotate the hue of saturated colours; instead a per-pixel bisection
    finds the largest chroma factor in ``[0, 1]`` that lands inside the RGB cube.
    """
    lab = lab.double()
    lab = torch.cat([lab[:, :1].clamp(0.0, 1.0), lab[:, 1:]], dim=1)

    def in_gamut(factor: torch.Tensor) -> torch.Tensor:
        rgb = oklab_to_linear_rgb(torch.cat([lab[:, :1], lab[:, 1:] * factor], dim=1))
        return ((rgb >= -1e-9) & (rgb <= 1 + 1e-9)).all(dim=1, keepdim=True)

    ok_full = in_gamut(torch.ones_like(lab[:, :1]))
    lo = torch.zeros_like(lab[:, :1])
    hi = torch.ones_like(lab[:, :1])
    for _ in range(gamut_steps):
        mid = (lo + hi) / 2
        ok = in_gamut(mid)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    factor = torch.where(ok_full, torch.ones_like(lo), lo)
    rgb = oklab_to_linear_rgb(torch.cat([lab[:, :1], lab[:, 1:] * factor], dim=1))
    return linear_to_srgb(rgb.clamp(0.0, 1.0))


def lab_transfer(content: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean/std transfer of all three Oklab channels, then gamut-mapped back to sRGB."""
    lab = adain(rgb_to_oklab(content), rgb_to_oklab(reference))
    return oklab_to_rgb(lab).to(content.dtype)


def color_correct(
    upscaled: torch.Tensor, reference: torch.Tensor, method: Method = "wavelet", strength: float = 1.0
) -> torch.Tensor:
    """Transfer ``reference``'s colour onto ``upscaled`` at the upscaled size.

    Args:
        upscaled: ``[B, 3|4, H, W]`` in [0, 1]; alpha (if any) is kept as is.
        reference: ``[B|1, 3|4, h, w]`` in [0, 1], any size or aspect ratio; one reference may serve
            the whole batch.
        method: one of :data:`METHODS`.
        strength: blend between the input (0) and the fully corrected image (1).

    Returns:
        ``[B, C, H, W]`` in [0, 1], same dtype and channels as ``upscaled``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown colour-correction method {method!r}; choose one of {', '.join(METHODS)}.")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}.")
    check_image(upscaled, name="upscaled image", purpose="colour correction")
    check_image(reference, name="reference image", purpose="colour correction")
    if method == "none" or strength == 0.0:
        return upscaled.clone()
    alpha = upscaled[:, 3:]
    # Both in NCHW (an image from ComfyUI or read_image is an NHWC view; srkit/layout.py): the blurs and the
    # full-size elementwise passes below then run on one dense layout.
    rgb = upscaled[:, :3].float().contiguous()
    ref = _match_batch(reference[:, :3].float().to(rgb.device).contiguous(), rgb.shape[0])
    if ref.shape[-2:] != rgb.shape[-2:]:
        ref = F.interpolate(ref, size=rgb.shape[-2:], mode="bicubic", align_corners=False, antialias=True)
    if method == "wavelet":
        out = wavelet(rgb, ref)
    elif method == "adain":
        out = adain(rgb, ref)
    else:
        out = lab_transfer(rgb, ref)
    out = torch.lerp(rgb, out.clamp(0.0, 1.0), strength).to(upscaled.dtype)
    return torch.cat([out, alpha], dim=1) if alpha.shape[1] else out
