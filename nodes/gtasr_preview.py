"""Progress previews of tiled GTASR runs: finished tiles pasted onto a small picture of the output.

ComfyUI shows a node's progress preview when ``ProgressBar.update_absolute`` gets
``("JPEG", PIL.Image, max_side)``, as its samplers do with decoded latents (``latent_preview.py``). The
canvas starts as a bicubic upscale of the pass input, so unfinished tiles show blurred and finished ones
sharp; it is kept at preview size (long side :data:`PREVIEW_SIDE`), never at the output size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PREVIEW_SIDE = 512  # ComfyUI's default --preview-size


class TilePreview:
    """The preview canvas of one image pass: :meth:`start`, :meth:`paste` per tile, :meth:`take`."""

    def __init__(self, side: int = PREVIEW_SIDE) -> None:
        self.side = side
        self.canvas: torch.Tensor | None = None
        self.factor = 1.0
        self.fresh = False

    def start(self, rgb: torch.Tensor, scale: int) -> None:
        """A new pass: ``rgb`` ``[1, 3, h, w]`` in [0, 1] goes to ``scale`` x its size."""
        h, w = rgb.shape[-2] * scale, rgb.shape[-1] * scale
        self.factor = min(1.0, self.side / max(h, w))
        size = (max(1, round(h * self.factor)), max(1, round(w * self.factor)))
        self.canvas = F.interpolate(
            rgb[:1].float().cpu(), size=size, mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0, 1)
        self.fresh = False

    def paste(self, index: int, rect: tuple[int, int, int, int], tile: torch.Tensor) -> None:
        """A finished tile of image ``index`` at ``rect`` = (y, x, h, w) output px (only image 0 is shown)."""
        if self.canvas is None or index != 0:
            return
        ch, cw = self.canvas.shape[-2:]
        y0, x0 = round(rect[0] * self.factor), round(rect[1] * self.factor)
        y1, x1 = (
            min(ch, round((rect[0] + rect[2]) * self.factor)),
            min(cw, round((rect[1] + rect[3]) * self.factor)),
        )
        if y1 <= y0 or x1 <= x0:
            return
        small = F.interpolate(
            tile[:1].float().cpu(),
            size=(y1 - y0, x1 - x0),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        self.canvas[..., y0:y1, x0:x1] = small.clamp(0, 1)
        self.fresh = True

    def take(self) -> tuple[str, Image.Image, int] | None:
        """The preview to send with the next progress update, once per pasted tile (else None)."""
        if not self.fresh or self.canvas is None:
            return None
        self.fresh = False
        a = (self.canvas[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        return "JPEG", Image.fromarray(a), self.side
