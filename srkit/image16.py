"""16-bit PNG and TIFF files: bit-depth detection, lossless reading and writing (through OpenCV).

Pillow opens 16-bit-per-channel RGB(A) PNG and TIFF files as 8-bit RGB (it keeps the high byte), and
cannot write them, so :mod:`srkit.image_io` hands those files to this module. OpenCV
(``opencv-python-headless``, in the ``cli`` and ``train`` extras) reads and writes them exactly; it is
imported only when a 16-bit file is met. Arrays here are ``[H, W, C]`` uint16 in RGB(A) order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SIXTEEN_BIT_SUFFIXES", "bit_depth", "read_rgb16", "write_rgb16"]

SIXTEEN_BIT_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_BITS_PER_SAMPLE = 258


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as err:
        raise ValueError(
            "16-bit PNG/TIFF files need OpenCV to keep their precision (Pillow reads them as 8 bits): "
            "pip install opencv-python-headless (or sr4k[cli])"
        ) from err
    return cv2


def bit_depth(path: str | os.PathLike[str], image: Any = None) -> int:
    """Bits per channel of an image file: 16 for 16-bit PNG/TIFF, else 8 (JPEG, WebP, BMP, 8-bit PNG...).

    PNG: the IHDR bit-depth byte (offset 24). TIFF: BitsPerSample from the open Pillow ``image`` (or the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        with open(path, "rb") as f:
            head = f.read(25)
        if head[:8] == _PNG_SIGNATURE and len(head) == 25:
            return 16 if head[24] == 16 else 8
        return 8
    if suffix in (".tif", ".tiff"):
        if image is None:
            from PIL import Image

            with Image.open(path) as im:
                return bit_depth(path, im)
        bits = getattr(image, "tag_v2", {}).get(_TIFF_BITS_PER_SAMPLE, 8)
        bits = bits if isinstance(bits, tuple | list) else (bits,)
        return 16 if max(bits) == 16 else 8
    return 8


def read_rgb16(path: str | os.PathLike[str], *, keep_alpha: bool) -> np.ndarray:
    """A 16-bit PNG/TIFF as ``[H, W, 3|4]`` uint16 RGB(A); grey becomes RGB, alpha only if ``keep_alpha``."""
    cv2 = _cv2()
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ValueError(f"{path} is not a readable 16-bit image")
    if a.dtype != np.uint16:
        raise ValueError(f"{path}: expected 16-bit samples, OpenCV read {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] in (1, 2):  # grey (+ alpha)
        grey = np.repeat(a[..., :1], 3, axis=-1)
        a = np.concatenate([grey, a[..., 1:]], axis=-1)
    else:
        a = np.concatenate([a[..., 2::-1], a[..., 3:]], axis=-1)  # BGR(A) -> RGB(A)
    return np.ascontiguousarray(a if keep_alpha else a[..., :3])


def write_rgb16(path: str | os.PathLike[str], a: np.ndarray) -> None:
    """Write ``[H, W, 3|4]`` uint16 RGB(A) as a 16-bit PNG or TIFF (by the suffix)."""
    path = Path(path)
    if path.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        raise ValueError(
            f"{path}: {path.suffix} cannot store 16 bits per channel; use .png or .tif, or 8 bits"
        )
    if a.dtype != np.uint16 or a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"write_rgb16 needs [H, W, 3|4] uint16, got {a.dtype} {a.shape}")
    cv2 = _cv2()
    bgr = np.ascontiguousarray(np.concatenate([a[..., 2::-1], a[..., 3:]], axis=-1))
    # zlib level 1, run-length strategy (as srkit.image_io.PNG_OPTIONS): 3.9 -> 2.6 s for a 4096² RGB output, smaller
    # files (benchmarks/png_encode.py)
    params = (
        [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        if path.suffix.lower() == ".png"
        else []
    )
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"could not write {path}")
