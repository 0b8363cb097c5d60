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
    """``[B, C, H, W]`` -> ComfyUI ``IMAGE`` ``[B, H, W, C]``, contiguous float32 in [0, 1]; always a new tensor.

    One copy into the new layout, then the clamp in place: a 4096² image took 0.10 s instead of 0.17 s for a clamped
    copy made contiguous (2-core EPYC), as the second fresh 200 MB tensor and its page faults are gone.
    """
    b, c, h, w = image.shape
    out = torch.empty((b, h, w, c), dtype=torch.float32, device=image.device)
    return out.copy_(image.movedim(1, -1)).clamp_(0.0, 1.0)


def as_comfy_image(image: torch.Tensor) -> torch.Tensor:
    """:func:`to_comfy_image` of a result the caller hands over and never uses again (a core's fresh output).

    When ``image`` is float32 and already stored as ``[B, H, W, C]`` (NHWC-strided: GTASR keeps an ``IMAGE``
    input's layout), its ``[B, H, W, C]`` view, clamped in place: no copy. A 4096² image took 0.009 s instead of
    0.084 s with to_comfy_image (2-core EPYC, ``benchmarks/gtasr_tiled_host.py``, "to IMAGE s": the copy and the
    page faults of a fresh 200 MB tensor). Otherwise a new tensor, as :func:`to_comfy_image`.
    """
    view = image.movedim(1, -1)
    if image.dtype == torch.float32 and view.is_contiguous():
        return view.clamp_(0.0, 1.0)
    return to_comfy_image(image)
