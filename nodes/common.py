"""Small adapters between ComfyUI's types and the cores' conventions."""

from __future__ import annotations

import torch


def from_comfy_image(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI ``IMAGE`` ``[B, H, W, C]`` -> ``[B, C, H, W]`` (no copy)."""
    if not torch.is_tensor(image) or image.ndim != 4:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"expected an IMAGE batch [B, H, W, C], got {shape}.")
    return image.movedim(-1, 1)


def to_comfy_image(image: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ComfyUI ``IMAGE`` ``[B, H, W, C]``, contiguous float32 in [0, 1]."""
    return image.movedim(1, -1).clamp(0.0, 1.0).float().contiguous()
