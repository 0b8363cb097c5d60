"""Helpers for the GTASR tests: the fixtures' deterministic init, a tiny config, a seam metric, tiny weight
files and a low-res test image."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from sr4k.gtasr_core import GTASRNet, build, passes_for, upscale
from sr4k.gtasr_core.config import TINY
from sr4k.srkit.sizing import resize_exact

# Node output (a saved 8-bit PNG) against a reference computed in the test process: SaveImage truncates to 8 bits
# (1/255), plus float rounding between two processes: CPU attention and conv kernels sum in an order that
# depends on the thread count (measured up to ~6e-6 with the window attention on CPU flash).
SAVED_8BIT_ATOL = 1 / 255 + 1e-4


@torch.no_grad()
def deterministic_init_(module: nn.Module) -> nn.Module:
    """The golden fixtures' init (shared/fixtures/README.md): per-key CRC32-seeded float64 normals."""
    for key, param in module.state_dict(keep_vars=True).items():
        if not isinstance(param, nn.Parameter):
            continue  # buffers keep their computed values
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        t = torch.randn(param.shape, generator=gen, dtype=torch.float64)
        if param.ndim >= 2:
            value = t / math.sqrt(math.prod(param.shape[1:]))
        elif key.endswith("weight"):
            value = 1 + 0.05 * t
        else:
            value = 0.05 * t
        param.copy_(value.to(torch.float32))
    return module


def border_ratio(image: Tensor, borders_x: list[int], borders_y: list[int]) -> float:
    """Seam metric: mean |step| across the given tile borders / mean |step| between other pixels.

    A border at column j is the step image[..., j] - image[..., j - 1] (rows likewise); ~1 means no seam.
    """
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # [W-1], step j-1 -> j
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    steps, at_border = [], []
    for prof, borders in ((dx, borders_x), (dy, borders_y)):
        mask = torch.zeros_like(prof, dtype=torch.bool)
        mask[[b - 1 for b in borders]] = True
        steps.append(prof[~mask].mean())
        if borders:
            at_border.append(prof[mask].mean())
    return float(torch.stack(at_border).mean() / torch.stack(steps).mean())


LR_H, LR_W = 20, 28  # not multiples of TINY's LR multiple (8): padding and cropping are exercised


def tiny_gtasr_files(folder: Path) -> tuple[Path, Path, GTASRNet]:
    """A small-config GTASR saved as BasicSR ``.pth`` ({'params', 'params_ema'}, ``module.`` keys) and
    as ``.safetensors``; returns both paths and the EMA network (the one inference must use).

    ``params`` holds different weights, so a loader that picked it instead of ``params_ema`` is caught.
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    ema = deterministic_init_(build(TINY))
    raw = {k: v.clone() for k, v in ema.state_dict().items()}
    online = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in raw.items()}
    pth = folder / "tiny_gtasr.pth"
    torch.save(
        {
            "params": {f"module.{k}": v for k, v in online.items()},
            "params_ema": {f"module.{k}": v for k, v in raw.items()},
        },
        pth,
    )
    st = folder / "tiny_gtasr.safetensors"
    save_file({k: v.contiguous() for k, v in raw.items()}, str(st))
    return pth, st, ema


def lowres(seed: int = 0, h: int = LR_H, w: int = LR_W, channels: int = 3) -> np.ndarray:
    """A smooth-plus-texture test image (uint8), so the upscale has structure to work on."""
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, h // 4), max(2, w // 4), channels)) * 255).astype(np.uint8)
    img = np.array(Image.fromarray(small.squeeze()).resize((w, h), Image.BICUBIC)).reshape(h, w, channels)
    return np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)


def any_size_reference(net: GTASRNet, lr: Tensor, size: tuple[int, int], seed: int, **kw: object) -> Tensor:
    """What GTASR to ``size`` must give, written out step by step: x4 passes of the core, one antialiased
    resize, alpha (channel 4) resized from the input."""
    x = lr[:, :3]
    for _ in range(passes_for(*lr.shape[-2:], size)):
        x = upscale(net, x, seed=seed, **kw)
    out = resize_exact(x, size)
    return torch.cat([out, resize_exact(lr[:, 3:], size)], 1) if lr.shape[1] == 4 else out
