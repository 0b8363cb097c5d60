"""What every benchmark dataset reader shares: the pair/dataset records, image listing and pairing checks.

Images pair by ``<stem>`` (file name without extension) between an LR and an HR folder; see
:mod:`srkit.datasets` for the folder layouts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..image_io import IMAGE_SUFFIXES, image_size

__all__ = [
    "HR_DIR_NAMES",
    "LR_DIR_NAMES",
    "Dataset",
    "DatasetError",
    "ImagePair",
    "check_pair_sizes",
    "find_subdir",
    "list_images",
    "pair_by_stem",
]

HR_DIR_NAMES = ("HQ", "HR", "GT")
LR_DIR_NAMES = ("LQ", "LR")


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete or has mis-sized images; the message lists what and why."""


def list_images(folder: str | os.PathLike[str], what: str = "image folder") -> dict[str, Path]:
    """{stem: path} of the images in ``folder`` (not recursive), sorted by stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{what} {folder} does not exist or is not a folder")
    found: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.stem, []).append(p)
    dupes = {s: sorted(x.name for x in ps) for s, ps in found.items() if len(ps) > 1}
    if dupes:
        raise DatasetError(f"{what} {folder}: several files share a stem (pairing is by stem): {dupes}")
    if not found:
        raise DatasetError(f"{what} {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return {s: found[s][0] for s in sorted(found)}


@dataclass(frozen=True)
class ImagePair:
    """One benchmark item: its stem, LR file and HR file (None for LR-only real-world sets)."""

    stem: str
    lr: Path
    hr: Path | None


@dataclass(frozen=True)
class Dataset:
    """A list of LR(/HR) pairs at one SR scale. ``scale`` is None for LR-only sets of unknown factor."""

    name: str
    root: Path
    scale: int | None
    pairs: tuple[ImagePair, ...]

    @property
    def has_hr(self) -> bool:
        return all(p.hr is not None for p in self.pairs)

    @property
    def hr_dir(self) -> Path | None:
        return self.pairs[0].hr.parent if self.has_hr and self.pairs[0].hr is not None else None

    def __len__(self) -> int:
        return len(self.pairs)


def pair_by_stem(
    lr: dict[str, Path], hr: dict[str, Path], lr_what: str = "LR", hr_what: str = "HR"
) -> list[str]:
    """Common stems of two {stem: path} maps; DatasetError listing the unpaired files of either side."""
    only_lr, only_hr = sorted(set(lr) - set(hr)), sorted(set(hr) - set(lr))
    if only_lr or only_hr:
        raise DatasetError(
            f"{lr_what} and {hr_what} files must pair by stem: {len(only_lr)} without {hr_what} "
            f"{[lr[s].name for s in only_lr[:10]]}, {len(only_hr)} without {lr_what} "
            f"{[hr[s].name for s in only_hr[:10]]}"
        )
    return sorted(lr)


def check_pair_sizes(
    pairs: list[ImagePair], scale: int, lr_size: int | None = None, hr_size: int | None = None
) -> None:
    """DatasetError listing every pair whose HR is not ``scale`` x LR or not the expected square size."""
    bad = []
    for p in pairs:
        (lh, lw), (hh, hw) = image_size(p.lr), image_size(p.hr) if p.hr else (0, 0)
        why = []
        if lr_size is not None and (lh, lw) != (lr_size, lr_size):
            why.append(f"LR {lh}x{lw} != {lr_size}x{lr_size}")
        if hr_size is not None and (hh, hw) != (hr_size, hr_size):
            why.append(f"HR {hh}x{hw} != {hr_size}x{hr_size}")
        if p.hr is not None and (hh, hw) != (lh * scale, lw * scale):
            why.append(f"HR {hh}x{hw} != x{scale} of LR {lh}x{lw}")
        if why:
            bad.append(f"{p.stem}: {'; '.join(why)}")
    if bad:
        raise DatasetError(f"{len(bad)} mis-sized pair(s): " + " | ".join(bad[:10]))


def find_subdir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        for cand in (root / n, root / n.lower()):
            if cand.is_dir():
                return cand
    raise DatasetError(f"{root}: no {what} folder (expected one of {', '.join(names)})")
