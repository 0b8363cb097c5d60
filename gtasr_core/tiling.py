"""Tiling geometry for GTASR inference (pure functions): padding, tile plans and feathered blend weights.

The released test code (``EdmUNetRealModel.test``) reflect-pads the LR image to a multiple of 64 and,
above 512 px, runs 512x512 LR tiles at stride 448 whose outputs are averaged. We keep the plan and blend
the HR tiles with smooth ramps over the overlaps instead of a flat average, so no seam shows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..srkit.sizing import padded_size

__all__ = ["TileRect", "axis_starts", "feather_ramp", "plan_tiles", "reflect_pad_to_multiple", "tile_weight"]


class TileRect(NamedTuple):
    """A tile in LR pixels: top-left (y, x) and size (h, w)."""

    y: int
    x: int
    h: int
    w: int


def _pad_axis(x: Tensor, target: int, dim: int) -> Tensor:
    """Pad dim -1 or -2 at the end up to ``target``: repeated reflection, replication for a 1-px side."""
    while x.shape[dim] < target:
        size = x.shape[dim]
        amount = min(target - size, size - 1)
        pad = (0, amount, 0, 0) if dim == -1 else (0, 0, 0, amount)
        if amount <= 0:  # a single pixel cannot be reflected
            pad = (0, target - size, 0, 0) if dim == -1 else (0, 0, 0, target - size)
            return F.pad(x, pad, mode="replicate")
        x = F.pad(x, pad, mode="reflect")
    return x


def reflect_pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad [B, C, H, W] at the bottom/right to a multiple of ``multiple`` by reflection (as released).

    Reflection needs pad < size, so large pads of small images reflect repeatedly; a 1-pixel side
    cannot reflect and is replicated instead.
    """
    th, tw = padded_size(*x.shape[-2:], multiple)
    return _pad_axis(_pad_axis(x, tw, -1), th, -2)


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: 0, stride, 2*stride ... while a tile fits, then ``length - tile``.

    Same set as the released ``ImageSpliterTh.extract_starts`` (starts past the end clamp to the last).
    """
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def plan_tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> list[TileRect]:
    """LR tiles covering an (already padded) h x w image, row-major.

    Tiles are ``tile`` x ``tile`` (clipped to the image), consecutive starts ``tile - overlap`` apart,
    the last one flush with the border. ``tile``, h and w must be multiples of ``multiple`` so every
    tile is a valid network input.
    """
    if tile < multiple or tile % multiple:
        lower = max(multiple, tile // multiple * multiple)
        raise ValueError(
            f"tile={tile} must be a positive multiple of {multiple} (the LR multiple of this "
            f"network); use e.g. {lower} or {lower + multiple}"
        )
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap={overlap} must be in [0, tile={tile}); the released value is tile // 8")
    if h % multiple or w % multiple or h <= 0 or w <= 0:
        raise ValueError(
            f"image {h}x{w} is not a positive multiple of {multiple}; pad it first (reflect_pad_to_multiple)"
        )
    th, tw = min(tile, h), min(tile, w)
    return [
        TileRect(y, x, th, tw)
        for y in axis_starts(h, th, tile - overlap)
        for x in axis_starts(w, tw, tile - overlap)
    ]


def feather_ramp(width: int, *, device: torch.device | None = None) -> Tensor:
    """Raised-cosine ramp of ``width`` samples rising from ~0 to ~1 (never exactly 0), float32."""
    t = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def _axis_weight(start: int, size: int, length: int, ramp: int, device: torch.device | None) -> Tensor:
    weight = torch.ones(size, dtype=torch.float32, device=device)
    ramp = min(ramp, size // 2)
    if ramp > 0 and start > 0:  # an edge inside the image: fade in
        weight[:ramp] = feather_ramp(ramp, device=device)
    if ramp > 0 and start + size < length:  # fade out
        weight[size - ramp :] = feather_ramp(ramp, device=device).flip(0)
    return weight


def tile_weight(
    rect: TileRect, h: int, w: int, ramp: int, scale: int = 1, device: torch.device | None = None
) -> Tensor:
    """Blend weight [1, 1, rect.h*scale, rect.w*scale] of a tile of an h x w (LR) image.

    Ramps of ``ramp * scale`` pixels on the edges that lie inside the image; 1 on image borders and
    in the interior. Outputs are combined as sum(w_i * y_i) / sum(w_i).
    """
    wy = _axis_weight(rect.y * scale, rect.h * scale, h * scale, ramp * scale, device)
    wx = _axis_weight(rect.x * scale, rect.w * scale, w * scale, ramp * scale, device)
    return (wy[:, None] * wx[None, :])[None, None]
