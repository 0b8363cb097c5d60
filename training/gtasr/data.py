"""GTASR training data: random HR crops from image folders, degraded on the fly into (LR, LR-up, HR).

Released recipe (docs/gtasr.md §7): ImageNet train images, random ``gt_size`` crop (reflect-padded
when smaller), no flip, Real-ESRGAN second-order degradation on the device, LR and LR-up quantised to 8 bit,
everything mapped to [-1, 1]. Sample ``i`` of process ``rank`` is a pure function of (seed, rank, i), so a
resumed run continues the exact stream (the loader starts at ``step * batch_size``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ...srkit.degradations import PRESETS as DEGRADATION_PRESETS
from ...srkit.degradations import degrade, quantize_8bit
from ...srkit.image_io import read_image
from ..common import derive_seed

__all__ = [
    "CropDataset",
    "PairBatch",
    "StepSampler",
    "bicubic_pair",
    "list_images",
    "make_loader",
    "make_pairs",
    "random_crop",
]

log = logging.getLogger(__name__)


class PairBatch(NamedTuple):
    """lq [B, 3, h, w], lq_up [B, 3, H, W] (bicubic x scale), gt [B, 3, H, W]; all in [-1, 1]."""

    lq: Tensor
    lq_up: Tensor
    gt: Tensor


def list_images(dirs: Sequence[str | Path], exts: Sequence[str]) -> list[Path]:
    """All files under ``dirs`` (recursive) whose extension is in ``exts`` (case-insensitive), sorted."""
    if not dirs:
        raise ValueError("no training images: set data_dirs = ['path/to/ILSVRC2012_img_train', ...]")
    wanted = {"." + e.lower().lstrip(".") for e in exts}
    files: list[Path] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"data_dirs entry {d} is not a folder")
        files += [p for p in d.rglob("*") if p.suffix.lower() in wanted and p.is_file()]
    if not files:
        raise ValueError(f"no images with extensions {sorted(wanted)} under {[str(d) for d in dirs]}")
    return sorted(files)


def random_crop(image: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A random ``size`` x ``size`` crop of ``image`` [C, H, W], reflect-padded first when a side is smaller."""
    h, w = image.shape[-2:]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        # reflect needs pad < side; tiny images fall back to edge replication
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        image = F.pad(image[None], (0, pad_w, 0, pad_h), mode=mode)[0]
        h, w = image.shape[-2:]
    top = int(torch.randint(h - size + 1, (1,), generator=generator))
    left = int(torch.randint(w - size + 1, (1,), generator=generator))
    return image[:, top : top + size, left : left + size]


class CropDataset(Dataset[Tensor]):
    """Index i -> HR crop [3, gt_size, gt_size] in [0, 1]; image and crop drawn from (seed, rank, i).

    Images are visited epoch by epoch in a per-(seed, rank, epoch) permutation.
    """

    def __init__(self, files: Sequence[Path], gt_size: int, seed: int, rank: int = 0) -> None:
        self.files, self.gt_size, self.seed, self.rank = list(files), gt_size, seed, rank
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)  # per-worker cache

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, self.rank, epoch))
            self._epoch, self._perm = epoch, torch.randperm(len(self.files), generator=gen)
        return self._perm

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        epoch, pos = divmod(index, len(self.files))
        file = self.files[int(self._permutation(epoch)[pos])]
        crop_gen = torch.Generator().manual_seed(derive_seed(self.seed, self.rank, epoch, pos, 1))
        return random_crop(read_image(file), self.gt_size, crop_gen)


class StepSampler(Sampler[int]):
    """Endless sample indices start, start+1, ... (the step-addressed stream a resume can restart)."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        i = self.start
        while True:
            yield i
            i += 1


def make_loader(
    files: Sequence[Path],
    gt_size: int,
    batch_size: int,
    seed: int,
    rank: int,
    start_step: int,
    num_workers: int,
) -> DataLoader[Tensor]:
    """An endless loader of HR batches [B, 3, gt, gt] that begins with the batch of step ``start_step + 1``."""
    dataset = CropDataset(files, gt_size, seed, rank)
    # Its own generator: creating the iterator must not draw from the global RNG (dropout), else a
    # resumed run would see a shifted dropout stream.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StepSampler(start_step * batch_size),
        num_workers=num_workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def bicubic_pair(hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """Clean pair for tests/debugging: (antialiased bicubic LR, bicubic LR-up), both 8-bit quantised."""
    h, w = hr.shape[-2:]
    lr = quantize_8bit(
        F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    )
    up = quantize_8bit(F.interpolate(lr, size=(h, w), mode="bicubic", align_corners=False))
    return lr, up


def make_pairs(hr: Tensor, degradation: str, scale: int, generator: torch.Generator) -> PairBatch:
    """HR [B, 3, H, W] in [0, 1] -> PairBatch in [-1, 1] via a srkit degradation preset or 'bicubic'."""
    if degradation == "bicubic":
        lr, lr_up = bicubic_pair(hr, scale)
    else:
        if degradation not in DEGRADATION_PRESETS:
            raise ValueError(
                f"unknown degradation {degradation!r}; choose from "
                f"{sorted(DEGRADATION_PRESETS) + ['bicubic']}"
            )
        lr, lr_up, hr = degrade(hr, DEGRADATION_PRESETS[degradation].with_scale(scale), generator)
    return PairBatch(lq=lr * 2 - 1, lq_up=lr_up * 2 - 1, gt=hr * 2 - 1)
