"""The seeded synthetic 4K benchmark: build it from a folder of HR images, load it back with its checks.

Layout (``<stem>`` = file name without extension)::

    out_dir/manifest.json          sha256 of every file, seeds, degradation parameters
    out_dir/HR/<stem>.png          the HR images (re-encoded losslessly as 8-bit PNG)
    out_dir/LR_x4/<stem>.png       Real-ESRGAN second-order degradation at x4 (srkit.degradations)
    out_dir/LR_x16/<stem>.png      ... at x16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from ..degradations import PRESETS, DegradationConfig, degrade
from ..download import sha256_file
from ..image_io import image_size, read_image, write_image
from .common import Dataset, DatasetError, ImagePair, list_images

__all__ = [
    "HR_DIR",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "build_synthetic_benchmark",
    "image_seed",
    "load_synthetic_benchmark",
    "lr_dir_name",
    "read_manifest",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sr4k-synthetic-benchmark"
MANIFEST_VERSION = 1
HR_DIR = "HR"


def lr_dir_name(scale: int) -> str:
    """Folder of the synthetic benchmark's LR images at ``scale`` (``LR_x4``)."""
    return f"LR_x{scale}"


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
