"""GTASR to any output size: whole x4 passes of the network, then one exact antialiased resize.

GTASR is trained for x4 only (docs/gtasr.md), so a target of scale s (or a long side) runs the network
``n = ceil(log4 s)`` times (x16 = two passes) and resizes the result down to the requested size with an
antialiased bicubic filter (:func:`srkit.sizing.resize_exact`); a target of exactly x4 is one pass and no
resize. Alpha never goes through the network: it is resized straight from the input to the output size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..srkit.sizing import resize_exact

__all__ = ["MAX_PASSES", "Pass", "passes_for", "upscale_to_size"]

MAX_PASSES = 3  # x64: beyond it the intermediate images are too large to be useful

Pass = Callable[[Tensor, int], Tensor]
"""``run_pass(rgb [B, 3, h, w] in [0, 1], pass_index) -> [B, 3, scale h, scale w]``: one network pass."""


def passes_for(height: int, width: int, size: tuple[int, int], scale: int = 4) -> int:
    """Network passes needed so that ``scale ** n`` px per input px reach ``size`` on both axes (n >= 1)."""
    need = max(size[0] / height, size[1] / width)
    n = max(1, math.ceil(math.log(need, scale) - 1e-9)) if need > 1 else 1
    if n > MAX_PASSES:
        raise ValueError(
            f"{width}x{height} -> {size[1]}x{size[0]} is x{need:.1f}, more than GTASR's "
            f"{MAX_PASSES} x{scale} passes (x{scale**MAX_PASSES}); use a smaller target or a "
            "larger input"
        )
    return n


def upscale_to_size(lr: Tensor, size: tuple[int, int], run_pass: Pass, scale: int = 4) -> Tensor:
    """``lr`` ``[B, 3|4, h, w]`` in [0, 1] -> ``[B, 3|4, H, W]`` = ``size``: RGB through :func:`passes_for`
    passes of ``run_pass`` then :func:`resize_exact`; alpha (channel 4) resized from the input."""
    h, w = lr.shape[-2:]
    x = lr[:, :3]
    for k in range(passes_for(h, w, size, scale)):
        x = run_pass(x, k)
    out = resize_exact(x, size)
    if lr.shape[1] == 4:
        out = torch.cat([out, resize_exact(lr[:, 3:].to(out.dtype), size)], dim=1)
    return out
