"""Baseline JPEG round trip (encode + decode) in pure torch, batched, with a per-image quality.

Follows ITU-T T.81 / the IJG libjpeg defaults so that the result is close to a real codec (e.g. Pillow):
  1. 8-bit quantisation of the input, RGB → YCbCr (JFIF full range, T.871);
  2. optional 4:2:0 chroma subsampling (2×2 average, as libjpeg's ``h2v2_downsample``);
  3. level shift by −128, 8×8 orthonormal DCT-II per block;
  4. quantisation with the Annex K tables scaled by the IJG quality rule
     (S = 5000/q for q < 50, else 200 − 2q; T = clamp(⌊(T_base·S + 50)/100⌋, 1, 255));
  5. dequantisation, inverse DCT, +128, range limit;
  6. chroma upsampling with libjpeg's "fancy" triangle filter (= bilinear, half-pixel centres), YCbCr → RGB,
     rounding to 8-bit levels.
Entropy coding is lossless and therefore skipped. Not differentiable (rounding); use it for data synthesis.

``jpeg_compress(..., codec="basicsr")`` instead computes BasicSR's ``DiffJPEG`` (``srkit.jpeg_basicsr``), the
round trip GTASR's released model was trained with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CHROMA_FACTOR",
    "CHROMA_QTABLE",
    "JPEG_BLOCK",
    "LEVELS",
    "LUMA_QTABLE",
    "dct_matrix",
    "jpeg_compress",
    "quality_tables",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]


JPEG_BLOCK = 8  # DCT block side (T.81)
CHROMA_FACTOR = 2  # 4:2:0 subsampling factor per axis
LEVELS = 255.0  # 8-bit sample range
CODECS = ("libjpeg", "basicsr")

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), row-major.
LUMA_QTABLE = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)
CHROMA_QTABLE = (
    17,
    18,
    24,
    47,
    99,
    99,
    99,
    99,
    18,
    21,
    26,
    66,
    99,
    99,
    99,
    99,
    24,
    26,
    56,
    99,
    99,
    99,
    99,
    99,
    47,
    66,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
    99,
)
# JFIF (T.871) full-range YCbCr, rows Y, Cb, Cr; chroma offset 128.
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
_YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136286, -0.714136286),
    (1.0, 1.772, 0.0),
)
_CHROMA_OFFSET = 128.0


def quality_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """IJG-scaled quantisation tables for qualities ``quality`` [B] (1..100): (luma, chroma), each [B, 8, 8]."""
    q = quality.to(torch.float64).clamp(1.0, 100.0)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)[:, None, None]
    out = []
    for base in (LUMA_QTABLE, CHROMA_QTABLE):
        t = torch.tensor(base, dtype=torch.float64, device=q.device).view(JPEG_BLOCK, JPEG_BLOCK)
        # force_baseline clamp to 255, as libjpeg/Pillow do for 8-bit tables.
        out.append(torch.floor((t * scale + 50.0) / 100.0).clamp(1.0, 255.0).to(torch.float32))
    return out[0], out[1]


def dct_matrix(n: int = JPEG_BLOCK, device: torch.device | None = None) -> Tensor:
    """Orthonormal DCT-II matrix D [n, n]: coefficients of a block X are D X Dᵀ."""
    k = torch.arange(n, dtype=torch.float64, device=device)[:, None]
    i = torch.arange(n, dtype=torch.float64, device=device)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(torch.float32)


def _colour(x: Tensor, matrix: tuple[tuple[float, ...], ...]) -> Tensor:
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def rgb_to_ycbcr(rgb255: Tensor) -> Tensor:
    """JFIF full-range RGB → YCbCr on [0, 255] values, [B, 3, H, W] → [B, 3, H, W]."""
    ycc = _colour(rgb255, _RGB_TO_YCBCR)
    return ycc + torch.tensor([0.0, _CHROMA_OFFSET, _CHROMA_OFFSET], device=ycc.device).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    shifted = ycc - torch.tensor([0.0, _CHROMA_OFFSET, _CHROMA_OFFSET], device=ycc.device).view(1, 3, 1, 1)
    return _colour(shifted, _YCBCR_TO_RGB)


def _block_roundtrip(plane: Tensor, table: Tensor) -> Tensor:
    """DCT → quantise → dequantise → IDCT of every 8×8 block of ``plane`` [B, H, W] (H, W multiples of 8)."""
    b, h, w = plane.shape
    n = JPEG_BLOCK
    d = dct_matrix(n, plane.device)
    blocks = (plane - _CHROMA_OFFSET).view(b, h // n, n, w // n, n)
    coef = torch.einsum("ij,bpjqk,lk->bpiql", d, blocks, d)
    t = table[:, None, :, None, :]
    coef = torch.round(coef / t) * t
    rec = torch.einsum("ji,bpjqk,kl->bpiql", d, coef, d)
    # Decoder range limit: reconstructed samples are 8-bit integers.
    return torch.round(rec.reshape(b, h, w) + _CHROMA_OFFSET).clamp(0.0, LEVELS)


def jpeg_compress(
    images: Tensor, quality: float | Tensor, *, chroma_subsampling: bool = True, codec: str = "libjpeg"
) -> Tensor:
    """JPEG-compress and decode ``images`` [B, 3, H, W] in [0, 1] at ``quality`` (scalar or [B], 1..100).

    ``codec="libjpeg"`` (default): returns [B, 3, H, W] in [0, 1] on 8-bit levels. Arbitrary H, W: the image
    is edge-replicated to whole MCUs (as libjpeg does) and cropped back.
    ``codec="basicsr"``: BasicSR's ``DiffJPEG`` (GTASR training data, ``srkit.jpeg_basicsr``): float output,
    always 4:2:0, quality below 100, gradients pass (straight-through rounding).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"jpeg_compress expects RGB images [B, 3, H, W], got {tuple(images.shape)}")
    if codec not in CODECS:
        raise ValueError(f"unknown JPEG codec {codec!r}; choose from {CODECS}")
    b, _, h, w = images.shape
    q = torch.as_tensor(quality, dtype=torch.float32, device=images.device).reshape(-1).expand(b)
    if bool((q < 1).any()) or bool((q > 100).any()):
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    if codec == "basicsr":
        if not chroma_subsampling:
            raise ValueError(
                "codec='basicsr' always subsamples chroma (4:2:0) like the reference; "
                "use codec='libjpeg' for chroma_subsampling=False"
            )
        if bool((q >= 100).any()):
            raise ValueError(
                f"codec='basicsr' needs quality < 100 (its table scale 2 - q/50 is 0 at 100), got {quality}"
            )
        from .jpeg_basicsr import basicsr_jpeg  # here, not at the top: that module builds on this one

        return basicsr_jpeg(images, q).to(images.dtype)
    luma_t, chroma_t = quality_tables(q)
    x = torch.round(images.detach().float().clamp(0, 1) * LEVELS)
    ycc = torch.round(rgb_to_ycbcr(x)).clamp(0.0, LEVELS)
    mcu = JPEG_BLOCK * (CHROMA_FACTOR if chroma_subsampling else 1)
    ph, pw = -h % mcu, -w % mcu
    if ph or pw:
        ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    y = _block_roundtrip(ycc[:, 0], luma_t)
    chroma = ycc[:, 1:]
    if chroma_subsampling:
        chroma = torch.round(F.avg_pool2d(chroma, CHROMA_FACTOR))
    cb = _block_roundtrip(chroma[:, 0], chroma_t)
    cr = _block_roundtrip(chroma[:, 1], chroma_t)
    chroma = torch.stack([cb, cr], dim=1)
    if chroma_subsampling:
        chroma = F.interpolate(chroma, scale_factor=CHROMA_FACTOR, mode="bilinear", align_corners=False)
    rgb = ycbcr_to_rgb(torch.cat([y[:, None], chroma], dim=1))
    out = torch.round(rgb).clamp(0.0, LEVELS)[:, :, :h, :w] / LEVELS
    return out.to(images.dtype)
