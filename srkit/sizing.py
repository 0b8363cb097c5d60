"""Output sizes, padding to a multiple and exact-size resizing, shared by both upscalers (pure functions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["padded_size", "padding_to_multiple", "resize_exact", "target_size"]


def target_size(
    height: int, width: int, *, scale: float | None = None, long_side: int | None = None
) -> tuple[int, int]:
    """Output ``(H, W)`` for an ``height`` x ``width`` input: by ``scale`` or by ``long_side``.

    Exactly one of the two is given; the aspect ratio is kept and sides are rounded to pixels.
    """
    if (scale is None) == (long_side is None):
        raise ValueError("give exactly one of scale (e.g. 4.0) or long_side (e.g. 4096).")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}.")
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}.")
        return max(1, round(height * scale)), max(1, round(width * scale))
    assert long_side is not None
    if long_side < 1:
        raise ValueError(f"long_side must be >= 1, got {long_side}.")
    factor = long_side / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def padding_to_multiple(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Rows and columns ``(ph, pw)`` to add at the bottom/right so both sides become multiples of ``multiple``.

    The one definition of "pad to a multiple"; how the added pixels are filled is each model's choice
    (``gtasr_core.tiling.reflect_pad_to_multiple``, ``op4ksr_core.onestep.pad_for_crop``).
    """
    if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
        raise ValueError(f"multiple must be a positive int, got {multiple!r}.")
    return (-height) % multiple, (-width) % multiple


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """``(height, width)`` rounded up to multiples of ``multiple``."""
    ph, pw = padding_to_multiple(height, width, multiple)
    return height + ph, width + pw


def resize_exact(image: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B, C, H, W]`` in [0, 1] to exactly ``size``: bicubic, antialiased when shrinking (a low-pass filter
    scaled to the reduction, as Pillow does, so no aliasing), clamped to [0, 1]. Unchanged when the size
    already matches. Computed in float32 at least; returns ``image``'s dtype."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    work = image if image.dtype == torch.float64 else image.float()
    out = F.interpolate(work, size=size, mode="bicubic", align_corners=False, antialias=shrink)
    return out.clamp_(0, 1).to(image.dtype)
