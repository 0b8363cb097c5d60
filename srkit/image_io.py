"""Image files <-> float tensors, the one implementation the CLI, datasets, benchmarks and trainers share.

Tensors are ``[C, H, W]`` float32 in [0, 1], C = 3 (RGB) or 4 (RGBA when asked to keep alpha). 8- and
16-bit files are read without losing precision (16-bit RGB(A) PNG/TIFF through :mod:`srkit.image16`, as
Pillow keeps only 8 bits of them); grey and palette images become RGB. Files are written with 8 or 16 bits
per channel (16: PNG and TIFF only); a 16-bit value v reads as v / 65535 and writes back as v exactly.

Reading follows ComfyUI's LoadImage: the EXIF orientation is applied (a phone photo stored sideways comes out
upright, and :func:`image_size` reports that upright size), and a colour-key transparency (PNG tRNS on grey, RGB or
palette images) becomes alpha. The ICC colour profile is not applied: the pixels stay in the file's colour space,
and :func:`icc_profile` gives the profile for :func:`write_image` to store with the output, so a Display P3 or
Adobe RGB photo keeps its colours. 32-bit integer and float images are refused rather than flattened.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image
from torch import Tensor

from .image16 import SIXTEEN_BIT_SUFFIXES, bit_depth, orient, read_rgb16, write_rgb16

__all__ = [
    "ALPHA_SUFFIXES",
    "IMAGE_SUFFIXES",
    "JPEG_OPTIONS",
    "PNG_OPTIONS",
    "SIXTEEN_BIT_SUFFIXES",
    "WEBP_OPTIONS",
    "icc_profile",
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
# Pillow's JPEG default (quality 75, chroma at half resolution both ways) blurs the detail an upscaler adds. Quality
# 95 with full-resolution chroma (4:4:4) keeps it. Measured once on a 1 MP 1/f-noise RGB image on 2 CPU cores (no
# benchmark script yet): 224 KiB -> 1.3 MiB, 4 -> 10 ms to encode.
JPEG_OPTIONS: dict[str, int] = {"quality": 95, "subsampling": 0}
# Lossless: lossy WebP always stores chroma at half resolution (4:2:0), whatever its quality, so no lossy setting
# keeps the upscaler's colour detail. For lossless WebP "quality" is the compression effort; on the same image, 0
# with method 0 took 0.04 s for 2.4 MiB, the default effort 0.34 s (about 5.6 s for a 4096² output) for 2.2 MiB,
# and PNG (PNG_OPTIONS' level 1) 0.15 s for 2.4 MiB: the fastest setting, at about PNG's size.
WEBP_OPTIONS: dict[str, Any] = {"lossless": True, "quality": 0, "method": 0}
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    ".png": PNG_OPTIONS,
    ".jpg": JPEG_OPTIONS,
    ".jpeg": JPEG_OPTIONS,
    ".webp": WEBP_OPTIONS,
}
# Pillow refuses images above 2 x Image.MAX_IMAGE_PIXELS (179 MP) as possible decompression bombs. The limit is
# kept: an upscaler's input that large would make an output of gigapixels (x4: 2.9 GP, 34 GiB as float32), so such
# a file is more likely a mistake than a job; read_image says so and how to proceed.
_RGB_PROFILE = b"RGB "  # ICC header bytes 16-19: the colour space of the data the profile describes


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """``Image.open(path)``, with Pillow's errors (at opening or decoding) as a ValueError naming the file and the fix."""
    try:
        with Image.open(path) as im:
            yield im
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{path} is too large to read: {err} sr4k keeps Pillow's limit of "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP because the upscaled result would be larger still; "
            "downscale or crop the image first"
        ) from err
    except (OSError, SyntaxError) as err:  # PIL raises SyntaxError on some malformed headers
        raise ValueError(_unreadable(path, err)) from err


def _unreadable(path: str | os.PathLike[str], err: BaseException) -> str:
    """Why ``path`` cannot be read: a suffix sr4k does not read, or a damaged file / a variant Pillow cannot decode."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return f"{path} is not a readable image ({err}); use one of {', '.join(IMAGE_SUFFIXES)}"
    return (
        f"{path} is not a readable image ({err}): the file is damaged or truncated, or a {suffix} variant that "
        "Pillow cannot decode; check that it opens in an image viewer, and re-save it (e.g. as PNG)"
    )


def _header_orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 = as stored) from the file's header, without decoding the pixels."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # Pillow would decode the whole image to look for an eXIf chunk after the pixels
    orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if orientation in range(1, 9) else 1


def _check_depth(path: str | os.PathLike[str], im: Image.Image) -> None:
    """Refuse 32-bit integer and float images: converting them to 8-bit RGB would clip them, silently."""
    if im.mode == "F" or (
        im.mode.startswith("I") and not im.mode.startswith("I;16") and bit_depth(path, im) != 16
    ):
        raise ValueError(
            f"{path} has 32-bit {'float' if im.mode == 'F' else 'integer'} samples (mode {im.mode}), which sr4k "
            "does not read: their range is not known (0-1, 0-65535, HDR). Convert it to a 16-bit PNG or TIFF first"
        )


def read_image(path: str | os.PathLike[str], *, keep_alpha: bool = False) -> Tensor:
    """Image file -> ``[3|4, H, W]`` float32 in [0, 1], upright (EXIF orientation applied); ValueError naming
    the file and the fix if it is unreadable."""
    with _opened(path) as im:
        # From the header, before the pixels are decoded, for every path alike: what image_size reports.
        orientation = _header_orientation(im)
        if im.mode not in _SIXTEEN_BIT and bit_depth(path, im) == 16:  # Pillow would keep 8 of the 16 bits
            a16 = orient(read_rgb16(path, keep_alpha=keep_alpha), orientation)
            a16 = a16.astype(np.float32) / np.float32(65535.0)
            return torch.from_numpy(a16).permute(2, 0, 1).contiguous()
        _check_depth(path, im)
        im.load()
        if im.mode in _SIXTEEN_BIT:  # 16-bit grey PNGs (older Pillow widens them to mode I)
            a = orient(np.asarray(im, dtype=np.float64)[..., None] / 65535.0, orientation)[..., 0]
            return torch.from_numpy(np.clip(a, 0, 1)).float()[None].expand(3, -1, -1).contiguous()
        alpha = keep_alpha and (
            im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)
        )
        a = orient(np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8), orientation)
    # NCHW-contiguous (permuting the uint8 copy, the cheapest place): a permuted view would be an NHWC-strided tensor,
    # whose layout convolutions downstream would follow (srkit/layout.py).
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous().float() / 255.0


def icc_profile(path: str | os.PathLike[str]) -> bytes | None:
    """The ICC colour profile embedded in an image file (from its header), if it describes RGB data; else None.

    A grey or CMYK profile is left out: sr4k's outputs are RGB, which such a profile would mislabel.
    """
    with _opened(path) as im:
        profile = im.info.get("icc_profile")
    return profile if isinstance(profile, bytes) and profile[16:20] == _RGB_PROFILE else None


def write_image(
    path: str | os.PathLike[str], image: Tensor, *, bits: int = 8, icc_profile: bytes | None = None
) -> Path:
    """Save ``[3|4, H, W]`` (or ``[1, 3|4, H, W]``) in [0, 1] with ``bits`` (8 or 16) per channel; the
    format follows the suffix (16 bits: .png, .tif, .tiff only). ``icc_profile`` (the input's, from
    :func:`icc_profile`) is stored with the pixels where the format can hold it (not in BMP or 16-bit TIFF).

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
        write_rgb16(path, a16.numpy().astype(np.uint16), icc_profile=icc_profile)
        return path
    a = (
        quantize(image.detach().float(), 255, torch.uint8).cpu().numpy()
    )  # on the image's device: 1/4 of the bytes
    if a.shape[-1] == 4 and path.suffix.lower() not in ALPHA_SUFFIXES:
        log.warning("%s: %s cannot store alpha; writing RGB only", path, path.suffix)
        a = a[..., :3]
    path.parent.mkdir(parents=True, exist_ok=True)
    options = dict(_SAVE_OPTIONS.get(path.suffix.lower(), {}))
    if icc_profile:
        options["icc_profile"] = icc_profile
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
    """``(H, W)`` of an image file as :func:`read_image` returns it (upright), read from its header only."""
    with _opened(path) as im:
        w, h = im.size
        if _header_orientation(im) >= 5:  # orientations 5-8 turn the image by a quarter: sides swap
            w, h = h, w
    return h, w
