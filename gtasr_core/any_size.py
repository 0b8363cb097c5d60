"""GTASR to any output size: whole x4 passes of the network, then one exact antialiased resize.

GTASR is trained for x4 only (docs/gtasr.md), so a target of scale s (or a long side) runs the network as few
times as reach it, ``n = ceil(log4(s / 1.25))`` (x16 = two passes), and resizes the result to the requested size
with an antialiased bicubic filter (:func:`srkit.sizing.resize_exact`); a target of exactly x4 is one pass and no
resize. The 1.25 (:data:`MAX_FINAL_UPSCALE`) is why "make it 4K" from a 1000 px image (x4.096) is one pass and a
2.4 % bicubic enlargement, not a second pass on a 16x larger image (16x the time and memory) shrunk back down.
Alpha never goes through the network: it is resized straight from the input to the output size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..srkit.oom import is_oom
from ..srkit.sizing import resize_exact

__all__ = ["MAX_FINAL_UPSCALE", "MAX_PASSES", "Pass", "passes_for", "upscale_to_size"]

log = logging.getLogger(__name__)

MAX_PASSES = 3  # x64: beyond it the intermediate images are too large to be useful
MAX_FINAL_UPSCALE = 1.25
"""The largest enlargement left to the final bicubic resize instead of another x4 pass (which costs 16x the last one)."""

Pass = Callable[[Tensor, int], Tensor]
"""``run_pass(rgb [B, 3, h, w] in [0, 1], pass_index) -> [B, 3, scale h, scale w]``: one network pass."""


def passes_for(height: int, width: int, size: tuple[int, int], scale: int = 4) -> int:
    """Network passes (n >= 1) after which ``size`` is at most :data:`MAX_FINAL_UPSCALE` times ``scale ** n`` px per
    input px on both axes: the final resize then enlarges by at most that, or shrinks."""
    need = max(size[0] / height, size[1] / width)
    rest = need / MAX_FINAL_UPSCALE
    n = max(1, math.ceil(math.log(rest, scale) - 1e-9)) if rest > 1 else 1
    if n > MAX_PASSES:
        raise ValueError(
            f"{width}x{height} -> {size[1]}x{size[0]} is x{need:.1f}, more than GTASR's "
            f"{MAX_PASSES} x{scale} passes and a final x{MAX_FINAL_UPSCALE:g} resize "
            f"(x{scale**MAX_PASSES * MAX_FINAL_UPSCALE:g}); use a smaller target or a larger input"
        )
    return n


def upscale_to_size(
    lr: Tensor,
    size: tuple[int, int],
    run_pass: Pass,
    scale: int = 4,
    resize_device: torch.device | None = None,
) -> Tensor:
    """``lr`` ``[B, 3|4, h, w]`` in [0, 1] -> ``[B, 3|4, H, W]`` = ``size``: RGB through :func:`passes_for`
    passes of ``run_pass`` then :func:`resize_exact`; alpha (channel 4) resized from the input.

    ``resize_device``: where the resize runs when one is needed (the result stays there), e.g. the GPU when the
    passes return host images: a 4864 x 3328 -> 4096 x 2804 antialiased resize took 0.47 s on 2 CPU cores. If that
    device runs out of memory, the resize runs where the image is. Default (and with no resize): where the last
    pass left the image.
    """
    h, w = lr.shape[-2:]
    x = lr[:, :3]
    for k in range(passes_for(h, w, size, scale)):
        x = run_pass(x, k)
    if resize_device is not None and tuple(x.shape[-2:]) != tuple(size) and x.device != resize_device:
        try:
            return _resize_with_alpha(x.to(resize_device), lr, size)
        except Exception as e:  # torch OOM types, and accelerator errors reporting OOM (srkit.oom)
            if not is_oom(e):
                raise
        log.warning(
            "GTASR: no room on %s for the resize to %dx%d; resizing on %s",
            resize_device,
            *size[::-1],
            x.device,
        )
    return _resize_with_alpha(x, lr, size)


def _resize_with_alpha(rgb: Tensor, lr: Tensor, size: tuple[int, int]) -> Tensor:
    """``rgb`` resized to ``size``, with ``lr``'s alpha (if any) resized from the input as channel 4, on rgb's device."""
    out = resize_exact(rgb, size)
    if lr.shape[1] == 4:
        out = torch.cat([out, resize_exact(lr[:, 3:].to(out.device, out.dtype), size)], dim=1)
    return out
