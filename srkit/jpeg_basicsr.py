"""JPEG round trip as BasicSR's ``DiffJPEG`` computes it: the GTASR / Real-ESRGAN training degradation.

GTASR synthesises its training pairs with BasicSR's ``DiffJPEG(differentiable=False)`` (docs/gtasr.md
§7), which is not a libjpeg-faithful codec (``srkit.jpeg``, ~27 dB PSNR apart on the golden cases
of ``../shared/fixtures/jpeg/``). This module reproduces the reference's function, written from the fixture
README's description (no code of the reference is used). Per image of ``images`` [B, 3, H, W] in [0, 1]:

  1. values × 255 as they are (no 8-bit quantisation of the input);
  2. zero padding at the bottom/right to a multiple of 16 (one 4:2:0 MCU), cropped back at the end;
  3. RGB → YCbCr (JFIF full range, the same matrix as ``srkit.jpeg``);
  4. chroma 4:2:0 by 2×2 averaging;
  5. 8×8 orthonormal DCT-II of (plane − 128), coefficient C[u, v] with u the vertical frequency;
  6. quantisation C ← round(C / Q)·Q with Q[u, v] = T[v, u]·s (the Annex K table **transposed**) and
     s = 50/q for q < 50, else 2 − q/50 (the IJG quality scale / 100, **no** rounding, **no** clamp to 1..255);
  7. inverse DCT + 128, chroma upsampled by nearest-neighbour 2×2 repetition, YCbCr → RGB;
  8. clamp to [0, 255] and ÷ 255 (no rounding to 8-bit levels).

Batched with a per-image quality; any device. Differentiable-friendly: nothing is detached and the rounding of
step 6 is a straight-through estimator (forward = ``torch.round``, gradient = identity), so gradients reach
the input while the values stay those of the reference's non-differentiable mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .jpeg import (
    CHROMA_FACTOR,
    CHROMA_QTABLE,
    JPEG_BLOCK,
    LEVELS,
    LUMA_QTABLE,
    dct_matrix,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)

MCU = JPEG_BLOCK * CHROMA_FACTOR  # 16: padding multiple (one 4:2:0 minimum coded unit)
_LEVEL_SHIFT = 128.0  # DCT input offset (T.81 level shift)


def quality_scale(quality: Tensor) -> Tensor:
    """Table multiplier per image, [B] → [B] (float32): the IJG quality rule / 100, unrounded and unclamped.

    s(q) = 50 / q for q < 50, else 2 − q / 50: s(50) = 1, and s(100) = 0 would zero every table, so
    ``jpeg_compress`` refuses q = 100 for this codec.
    """
    q = quality.to(torch.float32)
    return torch.where(q < 50, 50.0 / q, 2.0 - q / 50.0)


def scaled_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """(luma, chroma) quantisation steps [B, 8, 8] indexed [vertical, horizontal] frequency.

    The Annex K tables are transposed (the reference indexes them [horizontal, vertical]) and multiplied by
    :func:`quality_scale` without rounding or clamping.
    """
    s = quality_scale(quality)[:, None, None]
    tables = []
    for base in (LUMA_QTABLE, CHROMA_QTABLE):
        t = torch.tensor(base, dtype=torch.float32, device=quality.device).view(JPEG_BLOCK, JPEG_BLOCK)
        tables.append(t.T * s)
    return tables[0], tables[1]


def round_ste(x: Tensor) -> Tensor:
    """``torch.round`` in the forward pass, identity gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def block_roundtrip(plane: Tensor, step: Tensor) -> Tensor:
    """DCT → quantise with ``step`` [B, 8, 8] → dequantise → IDCT of every 8×8 block of ``plane`` [B, H, W].

    ``plane`` is on the 0..255 scale with H, W multiples of 8; the result is not rounded or clamped.
    """
    b, h, w = plane.shape
    n = JPEG_BLOCK
    d = dct_matrix(n, plane.device).to(plane.dtype)
    blocks = (plane - _LEVEL_SHIFT).view(b, h // n, n, w // n, n)
    coef = torch.einsum("ij,bpjqk,lk->bpiql", d, blocks, d)  # C = D X Dᵀ: i vertical, l horizontal frequency
    t = step[:, None, :, None, :]
    coef = round_ste(coef / t) * t
    rec = torch.einsum("ji,bpjqk,kl->bpiql", d, coef, d)  # X = Dᵀ C D
    return rec.reshape(b, h, w) + _LEVEL_SHIFT


def basicsr_jpeg(images: Tensor, quality: Tensor) -> Tensor:
    """BasicSR ``DiffJPEG`` round trip of ``images`` [B, 3, H, W] in [0, 1] at ``quality`` [B] (1 ≤ q < 100).

    Returns [B, 3, H, W] float32 in [0, 1] (not on 8-bit levels). Inputs are validated by
    ``srkit.jpeg.jpeg_compress``, the public entry point (``codec="basicsr"``).
    """
    b, _, h, w = images.shape
    luma_t, chroma_t = scaled_tables(quality)
    x = images.float() * LEVELS
    ph, pw = -h % MCU, -w % MCU
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0)
    ycc = rgb_to_ycbcr(x)
    y = block_roundtrip(ycc[:, 0], luma_t)
    chroma = F.avg_pool2d(ycc[:, 1:], CHROMA_FACTOR)
    cb = block_roundtrip(chroma[:, 0], chroma_t)
    cr = block_roundtrip(chroma[:, 1], chroma_t)
    chroma = torch.stack([cb, cr], dim=1).repeat_interleave(CHROMA_FACTOR, dim=-2)
    chroma = chroma.repeat_interleave(CHROMA_FACTOR, dim=-1)
    rgb = ycbcr_to_rgb(torch.cat([y[:, None], chroma], dim=1))
    return rgb.clamp(0.0, LEVELS)[:, :, :h, :w] / LEVELS
