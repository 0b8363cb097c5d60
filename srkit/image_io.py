"""Image files <-> float tensors, the one implementation the CLI, datasets, benchmarks and trainers share.

Tensors are ``[C, H, W]`` float32 in [0, 1], C = 3 (RGB) or 4 (RGBA when asked to keep alpha). 8- and
16-bit files are read without losing precision (16-bit RGB(A) PNG/TIFF through :mod:`srkit.image16`, as
Pillow keeps only 8 bits of them); grey and palette images become RGB. Files are written with 8 or 16 bits
per channel (16: PNG and TIFF only); a 16-bit value v reads as v / 65535 and writes back as v exactly.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .image16 import SIXTEEN_BIT_SUFFIXES, bit_depth, read_rgb16, write_rgb16

__all__ = [
    "ALPHA_SUFFIXES",
    "IMAGE_SUFFIXES",
    "PNG_OPTIONS",
    "SIXTEEN_BIT_SUFFIXES",
    "image_bits",
    "image_size",
    "quantize",
    "read_image",
    "write_image",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALPHA_SUFFIXES: tuple[str, ...] = (".png", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")
# PNG is lossless at any setting: zlib level 1 with the run-length strategy, which zlib's manual describes as "designed
# to be almost as fast as Z_HUFFMAN_ONLY, but give better compression for PNG image data". A 4096² RGB photo-like
# image (1/f noise): 2.22 -> 1.60 s and 40.1 -> 39.5 MiB against level 1's default strategy; faster and smaller on
# every image of benchmarks/png_encode.py (RESULTS.md, "PNG encoding"). ``compress_type`` is the strategy entry of Pillow's PNG encoder configuration; a Pillow without it
# ignores the key and writes with the default strategy.
PNG_OPTIONS: dict[str, int] = {"compress_level": 1, "compress_type": zlib.Z_RLE}


def read_image(path: str | os.PathLike[str], *, keep_alpha: bool = False) -> Tensor:
    """Image file -> ``[3|4, H, W]`` float32 in [0, 1]; ValueError naming the file if it is unreadable."""
    try:
        with Image.open(path) as im:
            if (
                im.mode not in _SIXTEEN_BIT and bit_depth(path, im) == 16
            ):  # Pillow would keep 8 of the 16 bits
                a16 = read_rgb16(path, keep_alpha=keep_alpha).astype(np.float32) / np.float32(65535.0)
                return torch.from_numpy(a16).permute(2, 0, 1).contiguous()
            im.load()
            if im.mode in _SIXTEEN_BIT:  # 16-bit grey PNGs (older Pillow widens them to mode I)
                a = np.asarray(im, dtype=np.float64) / 65535.0
                return torch.from_numpy(np.clip(a, 0, 1)).float()[None].expand(3, -1, -1).contiguous()
            alpha = keep_alpha and (
                im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            )
            a = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8)
    except (OSError, SyntaxError) as err:  # PIL raises SyntaxError on some malformed headers
        raise ValueError(
            f"{path} is not a readable image ({err}); use one of {', '.join(IMAGE_SUFFIXES)}"
        ) from err
    # NCHW-contiguous (permuting the uint8 copy, the cheapest place): a permuted view would be an NHWC-strided tensor,
    # whose layout convolutions downstream would follow (srkit/layout.py).
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous().float() / 255.0


def write_image(path: str | os.PathLike[str], image: Tensor, *, bits: int = 8) -> Path:
    """Save ``[3|4, H, W]`` (or ``[1, 3|4, H, W]``) in [0, 1] with ``bits`` (8 or 16) per channel; the
    format follows the suffix (16 bits: .png, .tif, .tiff only).

    Alpha is dropped, with a warning, for formats that cannot store it. Returns the path.
    """
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (3, 4):
        raise ValueError(f"write_image needs one image [3|4, H, W], got {tuple(image.shape)}")
    path = Path(path)
    if bits not in (8, 16):
        raise ValueError(f"bits={bits}; write 8 or 16 bits per channel")
    if bits == 16:
        if path.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
            raise ValueError(
                f"{path}: {path.suffix} cannot store 16 bits per channel; use "
                f"{', '.join(SIXTEEN_BIT_SUFFIXES)} or 8 bits"
            )
        a16 = quantize(image.detach().cpu().double(), 65535, torch.int32)  # float64: every level exact
        path.parent.mkdir(parents=True, exist_ok=True)
        write_rgb16(path, a16.numpy().astype(np.uint16))
        return path
    a = (
        quantize(image.detach().float(), 255, torch.uint8).cpu().numpy()
    )  # on the image's device: 1/4 of the bytes
    if a.shape[-1] == 4 and path.suffix.lower() not in ALPHA_SUFFIXES:
        log.warning("%s: %s cannot store alpha; writing RGB only", path, path.suffix)
        a = a[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    options = PNG_OPTIONS if path.suffix.lower() == ".png" else {}
    Image.fromarray(a).save(path, **options)
    return path


def quantize(image: Tensor, levels: int, dtype: torch.dtype) -> Tensor:
    """``[C, H, W]`` float in [0, 1] -> ``[H, W, C]`` contiguous ``dtype`` with values ``round(clamp(x, 0, 1) * levels)``
    (round half to even), the layout Pillow and OpenCV take without another copy.

    Computed as ``clamp(round(x * levels), 0, levels)``, the same number for every x (also ±inf), in one new
    tensor and in-place passes. For a 4096² RGB output on a 2-core EPYC: 0.39 -> 0.27 s against the out-of-place
    ``round(clamp(x, 0, 1) * levels)`` of a permuted view, and Pillow's copy of the array 0.15 -> 0.02 s.
    """
    q = torch.mul(image, levels).round_().clamp_(0, levels)  # torch.mul: never modifies the caller's tensor
    return q.to(dtype).permute(1, 2, 0).contiguous()


def image_bits(path: str | os.PathLike[str]) -> int:
    """Bits per channel of an image file: 16 for 16-bit PNG/TIFF (grey too), else 8."""
    return bit_depth(path)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w
