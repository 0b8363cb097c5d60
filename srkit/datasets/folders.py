"""Readers of paired and LR-only folders: DIV4K-50, any ``HQ|HR|GT`` + ``LQ|LR`` pair, a folder of LR images.

DIV4K-50 (4KAgent, arXiv 2507.07105; HF dataset ``YSZuo/DIV4K-50``; docs/op4ksr.md §6) is arranged by hand as
``root/HQ/<stem>.png`` (4096x4096) and ``root/LQ/<stem>.png`` (256x256), 50 pairs, x16. :func:`load_dataset`
also recognises the synthetic benchmark (:mod:`srkit.datasets.synthetic`) by its manifest.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..image_io import image_size
from .common import (
    HR_DIR_NAMES,
    LR_DIR_NAMES,
    Dataset,
    DatasetError,
    ImagePair,
    check_pair_sizes,
    find_subdir,
    list_images,
    pair_by_stem,
)
from .synthetic import MANIFEST, load_synthetic_benchmark

__all__ = ["DIV4K50", "load_dataset", "load_div4k50", "load_lr_folder"]

DIV4K50 = {"scale": 16, "lr_size": 256, "hr_size": 4096, "count": 50}


def load_div4k50(
    root: str | os.PathLike[str],
    *,
    lr_size: int = DIV4K50["lr_size"],
    hr_size: int = DIV4K50["hr_size"],
    count: int | None = DIV4K50["count"],
) -> Dataset:
    """DIV4K-50 from a local folder ``root/{HQ,LQ}/<stem>.png`` (x16: 256^2 -> 4096^2; see module doc)."""
    root = Path(root)
    if hr_size % lr_size:
        raise ValueError(f"hr_size {hr_size} must be a multiple of lr_size {lr_size}")
    hr = list_images(find_subdir(root, HR_DIR_NAMES, "HQ (4096x4096 ground truth)"), "DIV4K-50 HQ folder")
    lr = list_images(find_subdir(root, LR_DIR_NAMES, "LQ (256x256 input)"), "DIV4K-50 LQ folder")
    pairs = [ImagePair(s, lr[s], hr[s]) for s in pair_by_stem(lr, hr, "LQ", "HQ")]
    if count is not None and len(pairs) != count:
        raise DatasetError(
            f"DIV4K-50 at {root} has {len(pairs)} pairs, expected {count}; the download is "
            "incomplete (or pass count=None for a subset)"
        )
    check_pair_sizes(pairs, hr_size // lr_size, lr_size, hr_size)
    return Dataset("DIV4K-50", root, hr_size // lr_size, tuple(pairs))


def load_lr_folder(folder: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Real-world LR-only images (no ground truth); scale unknown until the caller picks one."""
    folder = Path(folder)
    pairs = tuple(ImagePair(s, p, None) for s, p in list_images(folder, "LR folder").items())
    return Dataset(name or folder.name, folder, None, pairs)


def load_dataset(root: str | os.PathLike[str], scale: int | None = None) -> Dataset:
    """Auto-detect: synthetic (manifest.json), paired ``HQ|HR|GT`` + ``LQ|LR`` folders, or LR-only folder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset {root} does not exist or is not a folder")
    if (root / MANIFEST).is_file():
        return load_synthetic_benchmark(root, scale or 4)
    has = [
        any((root / n).is_dir() or (root / n.lower()).is_dir() for n in names)
        for names in (HR_DIR_NAMES, LR_DIR_NAMES)
    ]
    if all(has):
        hr = list_images(find_subdir(root, HR_DIR_NAMES, "HR"), "HR folder")
        lr = list_images(find_subdir(root, LR_DIR_NAMES, "LR"), "LR folder")
        pairs = [ImagePair(s, lr[s], hr[s]) for s in pair_by_stem(lr, hr)]
        first_lr, first_hr = image_size(pairs[0].lr), image_size(pairs[0].hr)  # type: ignore[arg-type]
        found = first_hr[0] // max(first_lr[0], 1)
        if scale is not None and scale != found:
            raise DatasetError(f"{root}: HR/LR size ratio is {found}, but scale {scale} was asked")
        check_pair_sizes(pairs, found)
        return Dataset(root.name, root, found, tuple(pairs))
    if has[1]:
        return dataclasses.replace(
            load_lr_folder(find_subdir(root, LR_DIR_NAMES, "LR")), name=root.name, scale=scale
        )
    return dataclasses.replace(load_lr_folder(root), scale=scale)
