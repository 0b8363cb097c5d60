"""Test images for the artifact inspector: natural-looking content, a planted 32-px grid, 64-px tile steps."""

from __future__ import annotations

import math

import numpy as np

SIZE = 256
TILE = 64


def natural(seed: int) -> np.ndarray:
    """Smooth gradients plus blurred noise: image-like content without any grid, [H, W, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    base = np.stack(
        [
            0.5 + 0.3 * np.sin(x / 40) * np.cos(y / 55),
            0.4 + 0.2 * np.sin((x + y) / 70),
            0.5 + 0.25 * np.cos(y / 30),
        ],
        axis=-1,
    )
    noise = rng.random((SIZE + 8, SIZE + 8, 3))
    kernel = np.ones(9) / 9  # separable 9x9 box blur
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, "valid"), 0, noise)
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, "valid"), 1, noise)
    return np.clip(0.7 * base + 0.6 * (noise - 0.5) + 0.15, 0, 1)


def periodic(seed: int, period: int = 32) -> np.ndarray:
    """The natural image plus a faint (±0.04) period-32 checker: OP4KSR's intra-token artifact."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    pattern = 0.04 * np.sin(2 * math.pi * x / period) * np.sin(2 * math.pi * y / period)
    return np.clip(natural(seed) + pattern[..., None], 0, 1)


def tiled(seed: int) -> np.ndarray:
    """The natural image with a brightness step per 64-px tile: what an unblended tiled upscaler leaves."""
    offsets = (np.random.default_rng(seed + 100).random((SIZE // TILE, SIZE // TILE)) - 0.5) * 0.08
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return np.clip(natural(seed) + offsets[y // TILE, x // TILE][..., None], 0, 1)
