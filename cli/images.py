"""Input/output planning for the CLI; the image files themselves go through ``srkit.image_io``.

The CLI works on ``[1, C, H, W]`` float32 in [0, 1], C = 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from ..srkit.image_io import (
    IMAGE_SUFFIXES,
    SIXTEEN_BIT_SUFFIXES,
    image_bits,
    image_size,
    read_image,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "check_bits",
    "check_sizes",
    "load_image",
    "output_bits",
    "plan_outputs",
    "save_image",
]

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = ".png"  # folder mode writes lossless PNGs


def load_image(path: Path) -> Tensor:
    """Read an image file as ``[1, 3|4, H, W]`` (alpha kept when the file has it)."""
    return read_image(path, keep_alpha=True)[None]


def save_image(image: Tensor, path: Path, bits: int = 8, icc_profile: bytes | None = None) -> None:
    """Write ``[1, 3|4, H, W]`` in [0, 1] with ``bits`` (8 or 16) per channel and the input's ICC colour profile
    (``srkit.image_io.icc_profile``); the format follows the suffix."""
    write_image(path, image, bits=bits, icc_profile=icc_profile)


def check_bits(pairs: list[tuple[Path, Path]], requested: int | None) -> None:
    """Refuse ``--bits 16`` for outputs whose format cannot store it (before any model is loaded)."""
    if requested == 16:
        for _, dst in pairs:
            if dst.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
                raise ValueError(
                    f"--bits 16: output {dst} cannot store 16 bits per channel; use a "
                    f"{'/'.join(SIXTEEN_BIT_SUFFIXES)} output, or --bits 8"
                )


def check_sizes(
    pairs: list[tuple[Path, Path]], check: Callable[[int, int], None] | None
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Split ``pairs`` into those whose input header reads and whose ``(H, W)`` passes ``check`` (the upscaler's
    size limit), and (input, reason) for the others, so a folder run passes over them before a model loads."""
    ok, failed = [], []
    for src, dst in pairs:
        try:
            h, w = image_size(src)
            if check is not None:
                check(h, w)
        except (OSError, ValueError) as err:
            log.error("%s: %s", src, err)
            failed.append((src, str(err)))
        else:
            ok.append((src, dst))
    return ok, failed


def output_bits(src: Path, dst: Path, requested: int | None) -> int:
    """``requested`` (``--bits``), else 16 when the input file is 16-bit and the output format can store it."""
    if requested is not None:
        return requested
    if image_bits(src) != 16:
        return 8
    if dst.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        log.warning(
            "%s is 16-bit but %s stores 8 bits per channel; writing 8 bits (use a .png/.tif output to "
            "keep 16)",
            src,
            dst.suffix,
        )
        return 8
    return 16


def plan_outputs(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file -> a file (or into a folder), a folder -> a folder of PNGs.

    A folder's inputs are its image files, less hidden ones (names starting with "."): macOS's AppleDouble
    ``._name.png`` companions, and the ``.name.partial-*`` temporaries of a killed run when a folder is both an
    output and an input. Other files are reported in one line. Raises before any model is loaded when two
    outputs would be the same file (compared ignoring case, as Windows and macOS file systems do).
    """
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise ValueError(f"input {src} is a folder, so the output {dst} must be a folder too")
        files = _folder_images(src)
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
    _check_distinct(pairs)
    return pairs


def _folder_images(folder: Path) -> list[Path]:
    """The sorted image files of ``folder``; hidden files are left out, other suffixes are counted and logged."""
    files, others = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        (files if p.suffix.lower() in IMAGE_SUFFIXES else others).append(p)
    if others:
        kinds = sorted({p.suffix.lower() or "(no suffix)" for p in others})
        log.warning(
            "%s: skipped %d file(s) with unsupported suffixes: %s (images are read from %s)",
            folder,
            len(others),
            ", ".join(kinds),
            ", ".join(IMAGE_SUFFIXES),
        )
    return files


def _check_distinct(pairs: list[tuple[Path, Path]]) -> None:
    """Refuse two inputs with one output (``a.png`` and ``a.jpg`` -> ``a.png``): one would overwrite the other."""
    seen: dict[str, Path] = {}
    for src, dst in pairs:
        key = str(dst).casefold()
        if key in seen:
            raise ValueError(
                f"inputs {seen[key]} and {src} would both be written to {dst} (outputs are named after the "
                "input without its suffix, ignoring case); rename one of them, or move one to another folder"
            )
        seen[key] = src
