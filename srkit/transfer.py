"""Device -> host copies of result images: through pinned memory, without concatenating single images."""

from __future__ import annotations

import torch

from .layout import layout_of

__all__ = ["gather_images", "to_host"]


def to_host(image: torch.Tensor, pinned: bool = True) -> torch.Tensor:
    """``image`` on the CPU, in its memory layout (an NHWC-strided ``[B, C, H, W]`` stays NHWC, so a ComfyUI
    ``IMAGE`` is its ``[B, H, W, C]`` view). From CUDA with ``pinned``, the copy lands in page-locked memory (a DMA
    at full PCIe speed instead of a staged copy through pageable memory); the returned tensor is pinned."""
    if image.device.type == "cpu":
        return image
    if not pinned or image.device.type != "cuda":
        return image.cpu()
    out = torch.empty(image.shape, dtype=image.dtype, pin_memory=True, memory_format=layout_of(image))
    out.copy_(image, non_blocking=True)
    torch.cuda.current_stream(image.device).synchronize()  # the caller may read it at once
    return out


def gather_images(images: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(images)``, except that a single image is returned as is (a 4K float image is 201 MB)."""
    return images[0] if len(images) == 1 else torch.cat(images)
