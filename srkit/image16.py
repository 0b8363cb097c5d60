"""16-bit PNG and TIFF files: bit-depth detection, lossless reading and writing (through OpenCV).

Pillow opens 16-bit-per-channel RGB(A) PNG and TIFF files as 8-bit RGB (it keeps the high byte), and
cannot write them, so :mod:`srkit.image_io` hands those files to this module. OpenCV
(``opencv-python-headless``, in the ``cli`` and ``train`` extras) reads and writes them exactly; it is
imported only when a 16-bit file is met. Arrays here are ``[H, W, C]`` uint16 in RGB(A) order.

Files go through ``np.fromfile`` / ``tofile`` and OpenCV's in-memory codecs, not ``cv2.imread`` / ``imwrite``,
which take a narrow-character path and fail on Windows for names outside the system code page (e.g. "café.png").
OpenCV reads the pixels as stored: the caller applies the EXIF orientation (:func:`orient`). An ICC profile is
written into 16-bit PNGs (an iCCP chunk); OpenCV cannot write one into a TIFF, so 16-bit TIFFs go without.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SIXTEEN_BIT_SUFFIXES", "bit_depth", "orient", "read_rgb16", "write_rgb16"]

log = logging.getLogger(__name__)

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
    """A 16-bit PNG/TIFF as ``[H, W, 3|4]`` uint16 RGB(A), as stored; grey becomes RGB, alpha only if
    ``keep_alpha``."""
    cv2 = _cv2()
    a = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ValueError(
            f"{path} is not a readable 16-bit image: OpenCV could not decode it (damaged or truncated?); "
            "check that it opens in an image viewer, and re-save it"
        )
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


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """``[H, W, C]`` stored with EXIF ``orientation`` (1-8) -> upright, as ``PIL.ImageOps.exif_transpose`` turns
    an image; other values leave it as it is."""
    if orientation in (5, 6, 7, 8):  # a quarter turn, with a mirror for 5 and 7: sides swap
        a = a.transpose(1, 0, 2)  # 5 (TRANSPOSE) is this alone
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        a = a[:, ::-1]
    if orientation in (3, 4):
        a = a[::-1]
    return np.ascontiguousarray(a)


def write_rgb16(path: str | os.PathLike[str], a: np.ndarray, *, icc_profile: bytes | None = None) -> None:
    """Write ``[H, W, 3|4]`` uint16 RGB(A) as a 16-bit PNG or TIFF (by the suffix), with ``icc_profile`` in a
    PNG (a TIFF goes without: module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SIXTEEN_BIT_SUFFIXES:
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
        if suffix == ".png"
        else []
    )
    ok, encoded = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise OSError(f"could not encode {path} as a 16-bit {suffix} image")
    data = encoded.tobytes()
    if icc_profile and suffix == ".png":
        data = _with_png_chunk(data, b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    elif icc_profile:
        log.warning(
            "%s: OpenCV cannot store the ICC colour profile in a 16-bit TIFF; written without it", path
        )
    with open(path, "wb") as f:
        f.write(data)


def _with_png_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """``png`` with one more chunk right after IHDR (where iCCP and eXIf must come: before the pixels)."""
    if png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG that starts with its IHDR chunk")
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]  # signature, then IHDR: length, type, data, CRC
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return png[:end] + chunk + png[end:]
