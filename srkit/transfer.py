"""Device -> host copies of result images: through pinned memory, without concatenating single images."""

from __future__ import annotations

import torch

from .layout import layout_of

__all__ = ["ImageBatch", "to_host"]


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


class ImageBatch:
    """A batch of ``count`` result images added one at a time, as one ``[count, ...]`` tensor on ``device``.

    From the second image on, results are copied into one batch tensor allocated at the first, so the host holds
    the batch once: a list of results plus their concatenation held it twice (80 GB for 200 4K frames), and
    every per-image pinned buffer stayed in torch's pinned-memory cache afterwards. A batch of one leaves the
    device as :func:`to_host` copies it (one DMA into pinned memory when ``pinned``), with no further copy.
    """

    def __init__(self, count: int, device: torch.device | str, pinned: bool = True) -> None:
        if count < 1:
            raise ValueError(f"an image batch needs count >= 1, got {count}")
        self.count, self.device, self.pinned = count, torch.device(device), pinned
        self._out: torch.Tensor | None = None
        self._added = 0

    def add(self, image: torch.Tensor) -> None:
        """Add the next result, ``image`` of shape ``[1, ...]`` (every result the same shape and dtype)."""
        if self._added >= self.count:
            raise ValueError(f"the batch holds {self.count} images; one more was added")
        if self.count == 1:
            self._out = to_host(image, self.pinned) if self.device.type == "cpu" else image.to(self.device)
        else:
            if self._out is None:
                self._out = torch.empty((self.count, *image.shape[1:]), dtype=image.dtype, device=self.device)
            self._out[self._added : self._added + 1].copy_(image)
        self._added += 1

    def result(self) -> torch.Tensor:
        """The ``[count, ...]`` batch, once every image was added."""
        if self._out is None or self._added != self.count:
            raise ValueError(f"{self._added} of {self.count} images were added")
        return self._out
