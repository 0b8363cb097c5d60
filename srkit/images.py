"""Small image helpers every part shares, each defined once: luma weights, the luma map, the progress callback type.

Image *files* are in :mod:`srkit.image_io`; batch validation for colour and the nodes is
:func:`srkit.color.check_image_batch`; token geometry is :mod:`op4ksr_core.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["LUMA_WEIGHTS", "Progress", "luma"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B (torchvision ``rgb_to_grayscale``; ``metrics.Y_WEIGHTS`` is the
studio-swing YCbCr version of the same row, scaled to [16, 235])."""

Progress = Callable[[int, "int | None"], None]
"""``progress(done, total)`` after each unit of work (images, tiles, bytes); ``total`` is None when unknown.
An exception it raises cancels the work (ComfyUI's progress bar raises on cancel)."""


def luma(images: Tensor) -> Tensor:
    """BT.601 luma of RGB images ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (in the input's dtype and device)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"luma needs RGB images [B, 3, H, W], got {tuple(images.shape)}")
    w = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)
