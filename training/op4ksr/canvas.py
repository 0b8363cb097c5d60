"""Training crops placed in the 4K output canvas, so the LoRA learns the positions and RoPE base of 4K inference.

At 4096² inference the F16 + 2x2 token grid is 128 x 128: image ids run 0..127 and RFR's ``ntk`` base is
theta' = theta * 2 ** (56 / 54) ~ 20,520 (docs/op4ksr.md §3.4 b). A 1024-px training crop on its own would see ids
0..31 and theta (its 32-token grid is below FLUX's 64-token reference), never the 4K regime. So each crop is
*placed* in a canvas of ``canvas_long_side`` pixels (issue #10 A, docs/op4ksr.md Appendix D):

- image ids = token origin + ``arange`` (the crop's rows y0.., columns x0.. of the canvas grid);
- RFR's grid is the canvas grid (``RFRPosEmbed.grid_hw``), never the crop's.

Where the origin comes from:

- the HR image *is* a canvas-sized frame (its long side equals ``canvas_long_side``): the canvas is that frame
  (ceil to whole tokens, as inference pads), and the origin is the crop's true position (crops are then cut
  on the token grid);
- otherwise the canvas is square, ``canvas_long_side`` on each side, and the origin is drawn uniformly from
  the positions where the crop fits (its own seeded generator, so crops and degradations are unchanged).

With ``canvas_long_side`` equal to the crop size the origin is always 0 and the grid the crop's: exactly the
unplaced behaviour. A placement is an int64 tensor ``[y0, x0, rows, cols]`` in tokens (collates into ``[B, 4]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["CanvasSpec", "canvas_grid", "crop_step", "full_frame_placement", "is_canvas_frame", "place_crop"]


@dataclass(frozen=True)
class CanvasSpec:
    """The output canvas a crop is placed in: its long side (px) and the pixels per token side."""

    long_side: int
    unit: int  # VAE downscale x FLUX patch (32 for F16 + 2x2)

    def __post_init__(self) -> None:
        if self.unit < 1 or self.long_side < self.unit or self.long_side % self.unit:
            raise ValueError(
                f"canvas_long_side={self.long_side} must be a positive multiple of the {self.unit}-px token "
                f"(e.g. {max(1, round(self.long_side / max(self.unit, 1))) * max(self.unit, 1)})"
            )


def is_canvas_frame(height: int, width: int, spec: CanvasSpec) -> bool:
    """Whether an HR image of ``height`` x ``width`` is itself a canvas-sized frame (crops keep true origins)."""
    return max(height, width) == spec.long_side


def canvas_grid(height: int, width: int, spec: CanvasSpec) -> tuple[int, int]:
    """(rows, cols) tokens of the canvas for a source image: the frame itself, or the square canvas."""
    if is_canvas_frame(height, width, spec):
        return math.ceil(height / spec.unit), math.ceil(width / spec.unit)
    side = spec.long_side // spec.unit
    return side, side


def crop_step(height: int, width: int, spec: CanvasSpec, step: int) -> int:
    """Pixel step of crop origins: on the token grid for canvas frames (true origins), else ``step``."""
    return math.lcm(step, spec.unit) if is_canvas_frame(height, width, spec) else step


def place_crop(
    height: int, width: int, top: int, left: int, crop: int, spec: CanvasSpec, generator: torch.Generator
) -> torch.Tensor:
    """Placement ``[y0, x0, rows, cols]`` (int64, tokens) of the ``crop``-px crop at (top, left) of an image.

    Canvas frames: the true origin (``top``, ``left`` must lie on the token grid). Other images: a uniform
    random origin from ``generator`` among the positions where the crop fits in the square canvas.
    """
    if crop % spec.unit or crop > spec.long_side:
        raise ValueError(
            f"crop_size={crop} must be a multiple of the {spec.unit}-px token and at most "
            f"canvas_long_side={spec.long_side}"
        )
    rows, cols = canvas_grid(height, width, spec)
    n = crop // spec.unit
    if is_canvas_frame(height, width, spec):
        if top % spec.unit or left % spec.unit:
            raise ValueError(
                f"crop origin ({top}, {left}) of a canvas frame is not on the {spec.unit}-px token grid"
            )
        y0, x0 = top // spec.unit, left // spec.unit
    else:
        y0 = int(torch.randint(rows - n + 1, (1,), generator=generator))
        x0 = int(torch.randint(cols - n + 1, (1,), generator=generator))
    return torch.tensor([y0, x0, rows, cols], dtype=torch.int64)


def full_frame_placement(rows: int, cols: int) -> torch.Tensor:
    """The placement of a crop that is its whole canvas: origin 0, grid (rows, cols)."""
    return torch.tensor([0, 0, rows, cols], dtype=torch.int64)
