"""4K SR benchmark datasets: a seeded synthetic builder, DIV4K-50 and LR-only folders, image I/O.

Layouts (``<stem>`` = file name without extension; LR and HR files pair by stem):

* **synthetic** (:func:`build_synthetic_benchmark`)::

      out_dir/manifest.json          sha256 of every file, seeds, degradation parameters
      out_dir/HR/<stem>.png          the HR images (re-encoded losslessly as 8-bit PNG)
      out_dir/LR_x4/<stem>.png       Real-ESRGAN second-order degradation at x4 (srkit.degradations)
      out_dir/LR_x16/<stem>.png      ... at x16

* **DIV4K-50** (4KAgent, arXiv 2507.07105; HF dataset ``YSZuo/DIV4K-50``; docs/op4ksr.md §6):
  download it by hand and arrange it as ``root/HQ/<stem>.png`` (4096x4096) and ``root/LQ/<stem>.png``
  (256x256), 50 pairs, x16. ``HR``/``GT`` and ``LR`` are accepted for the folder names.
* **real-world LR only**: a folder of LR images (no ground truth); only no-reference metrics apply.

Images are float tensors [3, H, W] in [0, 1] (RGB; alpha dropped, grey replicated).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .degradations import PRESETS, DegradationConfig, degrade
from .download import sha256_file
from .image_io import IMAGE_SUFFIXES, image_size, read_image, write_image

__all__ = [
    "DIV4K50",
    "Dataset",
    "DatasetError",
    "HR_DIR",
    "HR_DIR_NAMES",
    "ImagePair",
    "LR_DIR_NAMES",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "build_synthetic_benchmark",
    "check_pair_sizes",
    "image_seed",
    "list_images",
    "load_dataset",
    "load_div4k50",
    "load_lr_folder",
    "load_synthetic_benchmark",
    "lr_dir_name",
    "pair_by_stem",
    "read_manifest",
]


log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sr4k-synthetic-benchmark"
MANIFEST_VERSION = 1
HR_DIR = "HR"
DIV4K50 = {"scale": 16, "lr_size": 256, "hr_size": 4096, "count": 50}
HR_DIR_NAMES = ("HQ", "HR", "GT")
LR_DIR_NAMES = ("LQ", "LR")


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete or has mis-sized images; the message lists what and why."""


def lr_dir_name(scale: int) -> str:
    """Folder of the synthetic benchmark's LR images at ``scale`` (``LR_x4``)."""
    return f"LR_x{scale}"


# --------------------------------------------------------------------------------------------------- I/O


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


# ----------------------------------------------------------------------------------------------- datasets


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


def _subdir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        for cand in (root / n, root / n.lower()):
            if cand.is_dir():
                return cand
    raise DatasetError(f"{root}: no {what} folder (expected one of {', '.join(names)})")


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
    hr = list_images(_subdir(root, HR_DIR_NAMES, "HQ (4096x4096 ground truth)"), "DIV4K-50 HQ folder")
    lr = list_images(_subdir(root, LR_DIR_NAMES, "LQ (256x256 input)"), "DIV4K-50 LQ folder")
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


def load_synthetic_benchmark(root: str | os.PathLike[str], scale: int = 4, *, verify: bool = True) -> Dataset:
    """A benchmark written by :func:`build_synthetic_benchmark` at ``scale``; checks files (and sha256)."""
    root = Path(root)
    manifest = read_manifest(root)
    key = f"x{scale}"
    if scale not in manifest["scales"]:
        raise DatasetError(
            f"{root} has scales {manifest['scales']}, not {scale}; rebuild with scales=(..., {scale})"
        )
    pairs, problems = [], []
    for item in manifest["images"]:
        entries = [(item["hr"], item["hr_sha256"]), (item["lr"][key]["path"], item["lr"][key]["sha256"])]
        for rel, digest in entries:
            f = root / rel
            if not f.is_file():
                problems.append(f"{rel} missing")
            elif verify and sha256_file(f) != digest:
                problems.append(f"{rel} sha256 differs from the manifest (modified or corrupt)")
        pairs.append(ImagePair(item["stem"], root / item["lr"][key]["path"], root / item["hr"]))
    if problems:
        raise DatasetError(f"synthetic benchmark {root}: " + "; ".join(problems[:10]) + " (rebuild it)")
    return Dataset(f"{root.name}-x{scale}", root, scale, tuple(pairs))


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root} has no {MANIFEST}; build it with build_synthetic_benchmark")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(
            f"{path} is not an sr4k synthetic benchmark manifest (format {manifest.get('format')!r})"
        )
    return manifest


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
        hr = list_images(_subdir(root, HR_DIR_NAMES, "HR"), "HR folder")
        lr = list_images(_subdir(root, LR_DIR_NAMES, "LR"), "LR folder")
        pairs = [ImagePair(s, lr[s], hr[s]) for s in pair_by_stem(lr, hr)]
        first_lr, first_hr = image_size(pairs[0].lr), image_size(pairs[0].hr)  # type: ignore[arg-type]
        found = first_hr[0] // max(first_lr[0], 1)
        if scale is not None and scale != found:
            raise DatasetError(f"{root}: HR/LR size ratio is {found}, but scale {scale} was asked")
        check_pair_sizes(pairs, found)
        return Dataset(root.name, root, found, tuple(pairs))
    if has[1]:
        return dataclasses.replace(
            load_lr_folder(_subdir(root, LR_DIR_NAMES, "LR")), name=root.name, scale=scale
        )
    return dataclasses.replace(load_lr_folder(root), scale=scale)


# ------------------------------------------------------------------------------------------------ builder


def image_seed(seed: int, stem: str, scale: int) -> int:
    """Per-image, per-scale degradation seed: independent of the folder's other files and their order."""
    digest = hashlib.sha256(f"{seed}:{stem}:x{scale}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _jsonable(config: DegradationConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def build_synthetic_benchmark(
    hr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    scales: tuple[int, ...] = (4, 16),
    seed: int = 0,
    *,
    preset: str = "gtasr",
    config: DegradationConfig | None = None,
    hr_size: int | None = 4096,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> Path:
    """Turn a folder of HR images into a synthetic 4K benchmark (layout in the module doc).

    Each HR image is degraded at every scale with its own generator seeded by :func:`image_seed`, so the
    same inputs, seed and torch version give byte-identical files. ``config`` (default the ``preset`` of
    :data:`srkit.degradations.PRESETS`) is used with its scale replaced. ``hr_size``: required square HR
    side (4096 for a 4K benchmark; None accepts any size divisible by every scale). Returns the manifest path.
    """
    hr_files = list_images(hr_dir, "HR folder")
    if not scales or any(not isinstance(s, int) or s < 2 for s in scales) or len(set(scales)) != len(scales):
        raise ValueError(f"scales={scales!r} must be distinct ints >= 2, e.g. (4, 16)")
    if config is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown degradation preset {preset!r}; choose from {sorted(PRESETS)}")
        config = PRESETS[preset]
    out = Path(out_dir)
    if (out / MANIFEST).exists() and not overwrite:
        raise DatasetError(f"{out} already holds a benchmark; pass overwrite=True to rebuild it")
    bad = []
    for path in hr_files.values():
        h, w = image_size(path)
        if hr_size is not None and (h, w) != (hr_size, hr_size):
            bad.append(f"{path.name}: {h}x{w} != {hr_size}x{hr_size}")
        elif any(h % s or w % s for s in scales):
            bad.append(f"{path.name}: {h}x{w} not divisible by every scale {scales}")
    if bad:
        raise DatasetError(
            f"{len(bad)} mis-sized HR image(s) (crop or resize them first): " + "; ".join(bad[:10])
        )
    images = []
    for stem, path in hr_files.items():
        hr = read_image(path)
        hr_rel = f"{HR_DIR}/{stem}.png"
        write_image(out / hr_rel, hr)
        entry = {
            "stem": stem,
            "source": path.name,
            "source_sha256": sha256_file(path),
            "hr": hr_rel,
            "hr_sha256": sha256_file(out / hr_rel),
            "size": list(hr.shape[-2:]),
            "lr": {},
        }
        for s in scales:
            g = torch.Generator(device=device).manual_seed(image_seed(seed, stem, s))
            lr = degrade(hr[None].to(device), config.with_scale(s), g).lr[0]
            rel = f"{lr_dir_name(s)}/{stem}.png"
            write_image(out / rel, lr)
            entry["lr"][f"x{s}"] = {
                "path": rel,
                "sha256": sha256_file(out / rel),
                "seed": image_seed(seed, stem, s),
                "size": list(lr.shape[-2:]),
            }
        images.append(entry)
        log.info("synthetic benchmark: %s done (%d/%d)", stem, len(images), len(hr_files))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "seed": seed,
        "scales": list(scales),
        "preset": preset if config is PRESETS.get(preset) else None,
        "device": str(device),
        "torch": torch.__version__,
        "degradation": {f"x{s}": _jsonable(config.with_scale(s)) for s in scales},
        "images": images,
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path
