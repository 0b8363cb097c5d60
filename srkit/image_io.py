"""Image files <-> float tensors, the one implementation the CLI, datasets, benchmarks and trainers share.

Tensors are ``[C, H, W]`` float32 in [0, 1], C = 3 (RGB) or 4 (RGBA when asked to keep alpha). 8- and
16-bit files are read; grey and palette images become RGB.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["ALPHA_SUFFIXES", "IMAGE_SUFFIXES", "image_size", "read_image", "write_image"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_SUFFIXES: tuple[str, ...] = (".png", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def read_image(path: str | os.PathLike[str], *, keep_alpha: bool = False) -> Tensor:
    """Image file -> ``[3|4, H, W]`` float32 in [0, 1]; ValueError naming the file if it is unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _SIXTEEN_BIT:  # 16-bit grey PNGs (older Pillow widens them to mode I)
                a = np.asarray(im, dtype=np.float64) / 65535.0
                return torch.from_numpy(np.clip(a, 0, 1)).float()[None].expand(3, -1, -1).contiguous()
            alpha = keep_alpha and (im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info))
            a = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8)
    except (OSError, SyntaxError) as err:  # PIL raises SyntaxError on some malformed headers
        raise ValueError(f"{path} is not a readable image ({err}); use one of {', '.join(IMAGE_SUFFIXES)}") from err
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255.0


def write_image(path: str | os.PathLike[str], image: Tensor) -> Path:
    """Save ``[3|4, H, W]`` (or ``[1, 3|4, H, W]``) in [0, 1] as 8 bits; the format follows the suffix.

    Alpha is dropped, with a warning, for formats that cannot store it. Returns the path.
    """
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (3, 4):
        raise ValueError(f"write_image needs one image [3|4, H, W], got {tuple(image.shape)}")
    path = Path(path)
    a = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if a.shape[-1] == 4 and path.suffix.lower() not in ALPHA_SUFFIXES:
        log.warning("%s: %s cannot store alpha; writing RGB only", path, path.suffix)
        a = a[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"compress_level": 1} if path.suffix.lower() == ".png" else {}  # PNG is lossless at any level
    Image.fromarray(a).save(path, **options)
    return path


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w
