"""Tile-seam detector for patch-based SR outputs (no reference image needed).

A patch-based upscaler that stitches tiles without (or with too little) blending leaves straight lines of
excess gradient at the tile borders, repeating with the tile stride. Measure (ours; no paper formula):

  g_x[j] = mean over rows of |Y[:, j+1] − Y[:, j]|       (column-boundary gradient profile; same for rows)
  r_T    = max over residues ρ ∈ [0, T) of  mean_{j ≡ ρ (mod T)} g_x[j] / median_j g_x[j]

i.e. how much stronger the gradient is on the best-aligned set of lines with stride T than on a typical line.
The score combines both axes (geometric mean when each has ≥ ``MIN_LINES`` candidate lines) and, without a
given tile stride, takes the strongest stride. A seamless image scores ≈ 1 (slightly above, because of the
search); visible seams score well above 1 (≈ 1 + step / typical gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .images import luma

__all__ = [
    "BASELINE_RADIUS",
    "DEFAULT_MIN_STRIDE",
    "DEFAULT_STRIDE_STEP",
    "FUNDAMENTAL_TOLERANCE",
    "MIN_LINES",
    "SeamResult",
    "gradient_profiles",
    "seam_heatmap",
    "seam_score",
    "seam_search",
]


MIN_LINES = 2  # a "grid" needs at least two parallel lines per axis
DEFAULT_STRIDE_STEP = 8  # tile strides of real tilers are multiples of 8 px
DEFAULT_MIN_STRIDE = 32
FUNDAMENTAL_TOLERANCE = 0.75  # report the smallest stride scoring within 25% of the best
BASELINE_RADIUS = 3  # neighbouring lines on each side that define "typical" gradient
_EPS = 1e-8


class SeamResult(NamedTuple):
    """Per image [B]: score (≥ 0, ≈ 1 without seams), best stride (px) and grid offsets (first seam column/row)."""

    score: Tensor
    stride: Tensor
    offset_x: Tensor
    offset_y: Tensor


def _luma(images: Tensor) -> Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must be [B, 3, H, W] (or [B, 1, H, W]) in [0, 1], got {tuple(images.shape)}"
        )
    x = images.float()
    if x.shape[1] == 1:
        return x
    return luma(x)


def gradient_profiles(images: Tensor) -> tuple[Tensor, Tensor]:
    """Boundary-gradient profiles from two disjoint halves of the image.

    Returns (px [B, 2, W−1], py [B, 2, H−1]): mean |∂x Y| per column boundary over the top / bottom half of
    the rows, and mean |∂y Y| per row boundary over the left / right half of the columns. A real seam is a
    straight line crossing both halves; noise is independent between them.
    """
    y = _luma(images)[:, 0]
    h, w = y.shape[-2:]
    if min(h, w) < 2 * MIN_LINES:
        raise ValueError(f"image {h}x{w} is too small for seam detection; need at least {2 * MIN_LINES} px")
    gx = (y[:, :, 1:] - y[:, :, :-1]).abs()
    gy = (y[:, 1:, :] - y[:, :-1, :]).abs()
    px = torch.stack([gx[:, : h // 2].mean(1), gx[:, h // 2 :].mean(1)], dim=1)
    py = torch.stack([gy[:, :, : w // 2].mean(2), gy[:, :, w // 2 :].mean(2)], dim=1)
    return px, py


def _local_baseline(profile: Tensor, radius: int = BASELINE_RADIUS) -> Tensor:
    """Mean of the ``radius`` neighbours on each side of every entry (the entry itself excluded), same shape."""
    shape = profile.shape
    x = F.pad(profile.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
    window = torch.ones(2 * radius + 1, device=profile.device)
    window[radius] = 0.0
    base = F.conv1d(x, window.view(1, 1, -1)) / (2 * radius)
    return base.reshape(shape).clamp(min=_EPS)


def _axis_scores(profile: Tensor, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """One axis, stride T. ``profile`` [B, 2, N] (two halves).

    Per residue ρ the mean excess (gradient / neighbours' gradient) of the lines j ≡ ρ (mod T). Returns
    (in-sample score, cross-validated score, best residue), each [B]: the in-sample score picks ρ on a half
    and reads it on the same half (biased upwards by the search); the cross-validated one picks ρ on one half
    and reads it on the other, so a seamless image scores 1 on average whatever the number of candidates.
    """
    b, _, n = profile.shape
    residue = torch.arange(n, device=profile.device) % stride
    excess = profile / _local_baseline(profile)
    sums = torch.zeros(b, 2, stride, device=profile.device).index_add_(2, residue, excess)
    counts = torch.bincount(residue, minlength=stride).to(profile.dtype)
    means = sums / counts  # [B, 2, T]
    best = means.max(dim=2)
    other = means.flip(1).gather(2, best.indices[..., None])[..., 0]
    return best.values.mean(1), other.mean(1), means.mean(1).argmax(dim=1)


def _candidate_strides(h: int, w: int) -> list[int]:
    # Both axes must fit MIN_LINES tiles so that every candidate is scored on the same evidence.
    top = min(h, w) // MIN_LINES
    return list(range(DEFAULT_MIN_STRIDE, top + 1, DEFAULT_STRIDE_STEP))


def _combine(x: Tensor | None, y: Tensor | None) -> Tensor:
    if x is not None and y is not None:
        return torch.sqrt(x.clamp(min=0) * y.clamp(min=0))
    out = x if x is not None else y
    assert out is not None
    return out


def seam_search(images: Tensor, strides: list[int] | None = None) -> SeamResult:
    """Search tile strides (default: multiples of 8 from 32 to min(H, W)/2) and all grid offsets.

    The stride is chosen on in-sample evidence (smallest stride within 25% of the best, so that multiples of
    the true stride do not win); the reported score is the cross-validated one at that stride.
    """
    px, py = gradient_profiles(images)
    b = px.shape[0]
    strides = strides or _candidate_strides(py.shape[-1] + 1, px.shape[-1] + 1)
    if not strides or min(strides) < 2:
        raise ValueError(f"tile strides {strides} must be >= 2 px and the image must fit two tiles per axis")
    zero = torch.zeros(b, dtype=torch.long, device=px.device)
    sel, val, offx, offy = [], [], [], []
    for t in strides:
        # A profile of n boundaries spans n + 1 pixels.
        has_x, has_y = px.shape[-1] + 1 >= MIN_LINES * t, py.shape[-1] + 1 >= MIN_LINES * t
        if not (has_x or has_y):
            sel.append(torch.zeros(b, device=px.device))
            val.append(torch.ones(b, device=px.device))
            offx.append(zero)
            offy.append(zero)
            continue
        ix, cx, ox = _axis_scores(px, t) if has_x else (None, None, zero)
        iy, cy, oy = _axis_scores(py, t) if has_y else (None, None, zero)
        sel.append(_combine(ix, iy))
        val.append(_combine(cx, cy))
        # Residue ρ indexes the boundary between pixels ρ and ρ+1: the seam starts at pixel ρ+1.
        offx.append((ox + 1) % t)
        offy.append((oy + 1) % t)
    in_sample = torch.stack(sel, dim=1)  # [B, S]
    best = in_sample.max(dim=1).values
    pick = (in_sample >= FUNDAMENTAL_TOLERANCE * best[:, None]).float().argmax(dim=1)
    idx = torch.arange(b, device=px.device)
    return SeamResult(
        score=torch.stack(val, 1)[idx, pick],
        stride=torch.tensor(strides, device=px.device)[pick],
        offset_x=torch.stack(offx, 1)[idx, pick],
        offset_y=torch.stack(offy, 1)[idx, pick],
    )


def seam_score(images: Tensor, tile: int | None = None) -> Tensor:
    """Seam strength per image [B] for images [B, 3, H, W] in [0, 1].

    ``tile``: the tiler's stride in px (tile size minus overlap); grid offsets are always searched. ``None``
    searches the plausible strides (:func:`seam_search`). ≈ 1 means no seams; > ~1.5 means visible seams.
    """
    return seam_search(images, None if tile is None else [tile]).score


def _box(x: Tensor, size_h: int, size_w: int) -> Tensor:
    """Mean over a size_h×size_w neighbourhood (same size, borders averaged over valid pixels only)."""
    return F.avg_pool2d(
        x, (size_h, size_w), stride=1, padding=(size_h // 2, size_w // 2), count_include_pad=False
    )


def seam_heatmap(image: Tensor, line_px: int = 33, context_px: int = 33) -> Tensor:
    """Local seam evidence map [H, W] of one image ([3, H, W], [1, 3, H, W] or [H, W]) in [0, 1].

    Gradients are averaged along each line direction over ``line_px`` (straight seams survive, texture
    averages out), then divided by their average across ``context_px`` neighbouring lines. ≈ 1 on seamless
    content, ≫ 1 on straight seams (either orientation; the larger of the two ratios is shown).
    """
    if image.ndim == 2:
        image = image[None, None]
    if image.ndim == 4 and image.shape[0] != 1:
        raise ValueError(f"seam_heatmap takes one image, got a batch of {image.shape[0]}; index it first")
    if line_px % 2 == 0 or context_px % 2 == 0:
        raise ValueError(f"line_px={line_px} and context_px={context_px} must be odd (centred windows)")
    y = _luma(image)
    gx = F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate")
    gy = F.pad((y[..., 1:, :] - y[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
    ex, ey = _box(gx, line_px, 1), _box(gy, 1, line_px)
    rx = ex / (_box(ex, 1, context_px) + _EPS)
    ry = ey / (_box(ey, context_px, 1) + _EPS)
    return torch.maximum(rx, ry)[0, 0]
