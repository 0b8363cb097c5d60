"""Image files <-> tensors for the CLI: ``[1, C, H, W]`` float32 in [0, 1], C = 3 (RGB) or 4 (RGBA)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "load_image", "plan_outputs", "save_image"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
OUTPUT_SUFFIX = ".png"  # folder mode writes lossless PNGs


def load_image(path: Path) -> Tensor:
    """Read an image file as ``[1, 3|4, H, W]`` float32 in [0, 1] (grey and palette become RGB)."""
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError) as err:  # PIL raises SyntaxError on some malformed headers
        raise ValueError(f"{path} is not a readable image ({err}); use one of {', '.join(IMAGE_SUFFIXES)}") from err
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey PNGs
        arr = np.asarray(img, dtype=np.float32) / (65535.0 if img.mode.startswith("I;16") else 2**31 - 1)
        return torch.from_numpy(arr).clamp(0, 1)[None, None].expand(1, 3, -1, -1).contiguous()
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    arr = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def save_image(image: Tensor, path: Path) -> None:
    """Write ``[1, 3|4, H, W]`` in [0, 1] as an 8-bit image; the format follows the file suffix."""
    arr = (image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    if arr.shape[-1] == 4 and path.suffix.lower() not in ALPHA_SUFFIXES:
        log.warning("%s: %s cannot store alpha; writing RGB only", path, path.suffix)
        arr = arr[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def plan_outputs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file (or into a folder), a folder -> a folder of PNGs."""
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"input {src} is a folder, so the output {dst} must be a folder too")
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {src}")
        pairs = [(p, dst / (p.stem + OUTPUT_SUFFIX)) for p in files]
    else:
        target = dst / (src.stem + OUTPUT_SUFFIX) if dst.is_dir() else dst
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"output {target} needs an image suffix ({', '.join(IMAGE_SUFFIXES)})")
        pairs = [(src, target)]
    for a, b in pairs:
        if b.resolve() == a.resolve():
            raise ValueError(f"output {b} would overwrite its input; choose another output path")
    return pairs
