"""Developer tool: (re)generate the example input images the templates load, ``example_workflows/inputs/``.

    .cache/comfyui/venv/bin/python tests/support/make_example_inputs.py

Procedural and ours (no photographs, no third-party content), deterministic, and nearly flat-shaded so the
PNGs stay small (5-25 kB): a small landscape with hard, aliased edges (what an upscaler should clean up), its
x2 bicubic upscale with a warm colour cast (what SR4K Color Correct fixes), and that upscale with a
brightness step per 64-px tile (what an unblended tiled upscaler leaves: SR4K Inspect Artifacts scores it
about 22, the clean one about 1.5). The pack copies them into ComfyUI's input folder at start-up
(``nodes/example_inputs.py``); ``tests/server/test_example_inputs.py`` checks that the shipped files equal what
this script makes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "example_workflows" / "inputs"
LOWRES_HW = (120, 160)  # 4:3; long side 4096 gives 4096 x 3072
UPSCALE = 2  # x2 keeps the PNGs small; the templates work at any size
TILE = 64  # tile grid of the "tiled" example, output px
CAST = np.array([1.06, 1.0, 0.9])  # warm cast of the "upscaled" example (R up, B down)


def lowres() -> np.ndarray:
    """The flat-shaded landscape, ``[H, W, 3]`` uint8: a sky gradient, sun, two hill ranges, a lake, a tree.

    Nothing in it is periodic or runs along a long straight row or column, so *SR4K Inspect Artifacts* finds no
    seams or grids in the clean upscale and the tiled example's grid stands out.
    """
    h, w = LOWRES_HW
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    img[:] = np.stack([150 + 0.8 * y, 190 + 0.5 * y, 240 - 0.3 * y], axis=-1)
    sun = (x - 118) ** 2 + (y - 30) ** 2 < 14**2
    img[sun] = (252, 220, 120)
    far = y > 62 + 10 * np.sin(x / 17) + 5 * np.sin(x / 7 + 1)
    img[far] = (96, 128, 150)
    near = y > 78 + 14 * np.sin(x / 29 + 2) + 4 * np.cos(x / 9)
    img[near] = (70, 130, 60)
    lake = (((x - 50) / 38) ** 2 + ((y - 100) / 9) ** 2) < 1
    img[lake] = (60, 110, 170)
    trunk = (np.abs(x - 128 - 0.15 * (y - 100)) < 2.5) & (y > 78) & (y < 108)
    img[trunk] = (110, 75, 45)
    crown = ((x - 126) / 13) ** 2 + ((y - 72) / 15) ** 2 + 0.08 * np.sin(x / 2 + y / 3) < 1
    img[crown] = (45, 100, 50)
    # A gentle, smooth, oblique light field: no region is perfectly flat and level steps never run straight.
    light = 3 * np.sin(x / 23 + y / 31) + 2 * np.cos(x / 41 - y / 13)
    return np.clip(img + light[..., None] + 0.5, 0, 255).astype(np.uint8)


def upscaled(low: np.ndarray) -> np.ndarray:
    """``low`` bicubic x``UPSCALE`` (as an upscaler's stand-in) with the warm colour cast, uint8."""
    t = torch.from_numpy(low).permute(2, 0, 1)[None].double() / 255
    up = (
        F.interpolate(t, scale_factor=UPSCALE, mode="bicubic", align_corners=False)[0]
        .permute(1, 2, 0)
        .numpy()
    )
    # no quantisation: level steps along the sky gradient would be long straight edges, i.e. "seams"
    return np.clip(up * CAST * 255 + 0.5, 0, 255).astype(np.uint8)


def tiled(up: np.ndarray) -> np.ndarray:
    """``up`` with a brightness step of up to +-8 levels per ``TILE`` px tile, uint8."""
    h, w = up.shape[:2]
    steps = np.random.default_rng(7).integers(-8, 9, size=(-(-h // TILE), -(-w // TILE)))
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(up.astype(int) + steps[yy // TILE, xx // TILE][..., None], 0, 255).astype(np.uint8)


def example_inputs() -> dict[str, np.ndarray]:
    """File name -> pixels of every example input."""
    low = lowres()
    up = upscaled(low)
    return {
        "sr4k_example_lowres.png": low,
        "sr4k_example_upscaled.png": up,
        "sr4k_example_patch_free.png": up,
        "sr4k_example_tiled.png": tiled(up),
    }


def main() -> None:
    INPUTS.mkdir(parents=True, exist_ok=True)
    for name, pixels in example_inputs().items():
        path = INPUTS / name
        Image.fromarray(pixels).save(path, optimize=True)
        print(f"{path.relative_to(REPO)}: {pixels.shape[1]}x{pixels.shape[0]}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    sys.exit(main())
