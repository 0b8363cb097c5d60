"""Tiling geometry for GTASR inference: padding, tile plans and feathered blend weights (pure functions and one
weight table).

The released test code (``EdmUNetRealModel.test``) reflect-pads the LR image to a multiple of 64 and,
above 512 px, runs 512x512 LR tiles at stride 448 whose outputs are averaged. We blend the HR tiles with smooth
ramps over the overlaps instead of a flat average, so no seam shows, and by default cover the image with the same
number of tiles made as small as the overlap allows (``plan`` = "balanced"): at 1024² that is 9 tiles of 384²
instead of 9 of 512², 44 % fewer pixels through the network. ``plan`` = "released" keeps the released geometry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..srkit.sizing import padded_size

__all__ = [
    "DEFAULT_TILE_PLAN",
    "TILE_PLANS",
    "TileBlend",
    "TilePlan",
    "TileRect",
    "axis_blend_weights",
    "axis_starts",
    "axis_weight",
    "balanced_axis",
    "feather_ramp",
    "plan_tiles",
    "reflect_pad_to_multiple",
]


TilePlan = Literal["balanced", "released"]
TILE_PLANS: tuple[TilePlan, ...] = ("balanced", "released")
DEFAULT_TILE_PLAN: TilePlan = "balanced"


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


def balanced_axis(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """(size, starts) of the fewest equal tiles of at most ``tile`` px that cover an axis of ``length`` px with
    consecutive tiles overlapping by at least ``overlap``, each as small as that allows.

    n = ceil((length - overlap) / (tile - overlap)) tiles (no fewer can cover the axis with that overlap); size = the
    smallest multiple of ``multiple`` >= (length + (n - 1) * overlap) / n (at most ``tile`` when ``tile`` is a
    multiple); starts floor(k * (length - size) / (n - 1)), whose steps are at most size - overlap. The released
    plan (:func:`axis_starts`) uses the same number of tiles but all of ``tile`` px, its last one flush with the
    border: at 1024 px with tiles of 512 and an overlap of 64, tiles of 512 at 0, 448 and 512 (1536 px of tiles)
    against tiles of 384 at 0, 320 and 640 (1152 px) here; 9 tiles of 512² against 9 of 384² for the image.
    """
    if not 0 <= overlap < tile or tile % multiple or length % multiple:
        raise ValueError(
            f"balanced_axis(length={length}, tile={tile}, overlap={overlap}): need 0 <= overlap < tile and tile, "
            f"length multiples of {multiple}"
        )
    if length <= tile:
        return length, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // (n * multiple)) * multiple
    return size, [k * (length - size) // (n - 1) for k in range(n)]


def plan_tiles(
    h: int, w: int, tile: int, overlap: int, multiple: int, plan: TilePlan = DEFAULT_TILE_PLAN
) -> list[TileRect]:
    """LR tiles covering an (already padded) h x w image, row-major: a grid of equal tiles.

    ``plan`` = "balanced" (default): the fewest tiles of at most ``tile`` px per axis, as small as they can be with
    overlaps of at least ``overlap`` (:func:`balanced_axis`). "released": tiles of ``tile`` px (clipped to the
    image), consecutive starts ``tile - overlap`` apart, the last one flush with the border, as the released test
    code. ``tile``, h and w must be multiples of ``multiple`` so every tile is a valid network input.
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
    if plan == "balanced":
        (th, ys), (tw, xs) = (
            balanced_axis(h, tile, overlap, multiple),
            balanced_axis(w, tile, overlap, multiple),
        )
    elif plan == "released":
        th, tw = min(tile, h), min(tile, w)
        ys, xs = axis_starts(h, th, tile - overlap), axis_starts(w, tw, tile - overlap)
    else:
        raise ValueError(f"plan={plan!r}; choose one of {', '.join(TILE_PLANS)}")
    return [TileRect(y, x, th, tw) for y in ys for x in xs]


def feather_ramp(width: int, *, device: torch.device | None = None) -> Tensor:
    """Raised-cosine ramp of ``width`` samples rising from ~0 to ~1 (never exactly 0), float32."""
    t = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def axis_weight(start: int, size: int, length: int, ramp: int, device: torch.device | None = None) -> Tensor:
    """Feathered 1-D weight [size] (float32) of a tile covering ``[start, start + size)`` of an axis of ``length``.

    Raised-cosine ramps of ``ramp`` samples (at most ``size // 2``) on the ends that lie inside the axis; 1 on
    the axis ends and in the interior.
    """
    weight = torch.ones(size, dtype=torch.float32, device=device)
    ramp = min(ramp, size // 2)
    if ramp > 0 and start > 0:  # an edge inside the image: fade in
        weight[:ramp] = feather_ramp(ramp, device=device)
    if ramp > 0 and start + size < length:  # fade out
        weight[size - ramp :] = feather_ramp(ramp, device=device).flip(0)
    return weight


def axis_blend_weights(
    starts: Sequence[int], size: int, length: int, ramp: int, device: torch.device | None = None
) -> list[Tensor]:
    """Per start, a [length] float32 weight: the tile's :func:`axis_weight` (zero outside the tile) divided by the
    sum of all of them, so the list adds up to 1 wherever a tile covers the axis."""
    raw = torch.zeros(len(starts), length, dtype=torch.float32, device=device)
    for row, start in zip(raw, starts, strict=True):
        row[start : start + size] = axis_weight(start, size, length, ramp, device)
    return list(raw / raw.sum(0).clamp_min(torch.finfo(torch.float32).tiny))


class TileBlend:
    """Normalised blend weights of a :func:`plan_tiles` plan at ``scale`` times its size (the HR output).

    Tiles are combined as sum(w_i * y_i) / sum(w_i) with w_i the outer product of the tile's two
    :func:`axis_weight`s (ramps of ``ramp * scale`` px over the overlaps). A plan is a grid (every row start with
    every column start), and a grid's sum of outer products is the outer product of the per-axis sums; so
    w_i / sum(w) is the outer product of the two :func:`axis_blend_weights`. Each tile can therefore be weighted
    on its own, where it is computed, and the blend is a plain sum: no whole-image weight map, no division pass.
    """

    def __init__(
        self,
        rects: Sequence[TileRect],
        h: int,
        w: int,
        ramp: int,
        scale: int = 1,
        device: torch.device | None = None,
    ) -> None:
        self.scale = scale
        self.ys = sorted({r.y for r in rects})
        self.xs = sorted({r.x for r in rects})
        th, tw = rects[0].h, rects[0].w
        if any((r.h, r.w) != (th, tw) for r in rects) or len(rects) != len(self.ys) * len(self.xs):
            raise ValueError("TileBlend needs a grid of equal tiles, as plan_tiles makes")
        self._wy = axis_blend_weights(
            [y * scale for y in self.ys], th * scale, h * scale, ramp * scale, device
        )
        self._wx = axis_blend_weights(
            [x * scale for x in self.xs], tw * scale, w * scale, ramp * scale, device
        )

    def _rows(self, r: TileRect) -> slice:
        return slice(r.y * self.scale, (r.y + r.h) * self.scale)

    def _cols(self, r: TileRect) -> slice:
        return slice(r.x * self.scale, (r.x + r.w) * self.scale)

    def weights(self, r: TileRect) -> tuple[Tensor, Tensor]:
        """The tile's normalised weight as two factors, [h*scale, 1] and [1, w*scale]: w_i / sum(w) = product."""
        iy, ix = self.ys.index(r.y), self.xs.index(r.x)
        return self._wy[iy][self._rows(r), None], self._wx[ix][None, self._cols(r)]

    def coverage(self, r: TileRect, out: Tensor | None = None) -> Tensor:
        """[h*scale, w*scale]: over tile ``r``'s area, the sum of the normalised weights of the tiles up to and
        including ``r`` in plan (row-major) order. The blend accumulated so far divided by this is the blend of
        those tiles; it is 1 where no later tile reaches. Written into ``out`` when given (a reused buffer).

        Tiles before ``r`` are the rows above (all columns: their column weights sum to 1) and the tiles to the
        left in ``r``'s row, so the sum is rows_above(y) + w_row(y) * cols_so_far(x).
        """
        iy, ix = self.ys.index(r.y), self.xs.index(r.x)
        rows, cols = self._rows(r), self._cols(r)
        above = sum((v[rows] for v in self._wy[:iy]), torch.zeros_like(self._wy[iy][rows]))
        left = sum((v[cols] for v in self._wx[: ix + 1]), torch.zeros_like(self._wx[ix][cols]))
        return torch.addcmul(above[:, None], self._wy[iy][rows, None], left[None, :], out=out)
