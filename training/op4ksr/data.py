"""Training pairs for OP4KSR: HR crops degraded on the fly (seeded), or aligned crops of paired folders.

Every sample is a pure function of its *position* in the training stream, so a resumed run sees exactly
the samples the uninterrupted run would have seen, on any number of processes:
``position -> (epoch permutation of the images, crop seed, degradation seed)``. :class:`StreamSampler`
yields ``(image_index, sample_seed)`` for the positions of one process; the datasets turn that into
``(lr [3, c/s, c/s], hr [3, c, c])`` in [0, 1], plus the crop's placement in the output canvas
(``[y0, x0, rows, cols]`` tokens, ``canvas``) when the dataset is given a ``canvas``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...srkit.degradations import DegradationConfig, degrade
from ...srkit.image_io import IMAGE_SUFFIXES, read_image
from ..common import derive_seed
from ..common.sampler import (  # re-exported: the trainers' stream, here since the first trainer
    Key,
    StreamSampler,
)
from .canvas import CanvasSpec, crop_step, place_crop

__all__ = [
    "DegradedCrops",
    "Key",
    "PairedCrops",
    "StreamSampler",
    "crop_origin",
    "list_images",
]


Sample = tuple[torch.Tensor, ...]  # (lr, hr) or (lr, hr, placement)


def _placement_generator(seed: int) -> torch.Generator:
    # Its own stream: placing crops in the canvas leaves the crop and degradation draws unchanged.
    return torch.Generator().manual_seed(derive_seed(seed, 1))


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; ValueError if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist; set data_dir (and lr_dir for paired data)")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return files


def crop_origin(height: int, width: int, size: int, step: int, generator: torch.Generator) -> tuple[int, int]:
    """Random top-left of a ``size`` crop on a grid of ``step`` pixels (``step`` = scale keeps LR aligned)."""
    rows, cols = (height - size) // step + 1, (width - size) // step + 1
    top = int(torch.randint(rows, (1,), generator=generator)) * step
    left = int(torch.randint(cols, (1,), generator=generator)) * step
    return top, left


class DegradedCrops(Dataset):
    """HR folder -> random ``crop_size`` crops -> Real-ESRGAN degradation (``srkit.degradations``) at its scale."""

    def __init__(
        self,
        folder: str | Path,
        crop_size: int,
        degradation: DegradationConfig,
        canvas: CanvasSpec | None = None,
    ) -> None:
        if crop_size % degradation.scale:
            raise ValueError(
                f"crop_size={crop_size} is not a multiple of the degradation scale {degradation.scale}"
            )
        self.files, self.crop, self.degradation, self.canvas = (
            list_images(folder),
            crop_size,
            degradation,
            canvas,
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Key) -> Sample:
        index, seed = key
        hr = read_image(self.files[index])
        _, h, w = hr.shape
        if min(h, w) < self.crop:
            raise ValueError(
                f"{self.files[index]} is {w}x{h}, smaller than crop_size={self.crop}; remove it or crop less"
            )
        g = torch.Generator().manual_seed(seed)
        step = crop_step(h, w, self.canvas, 1) if self.canvas else 1
        top, left = crop_origin(h, w, self.crop, step, g)
        hr = hr[:, top : top + self.crop, left : left + self.crop]
        out = degrade(hr[None], self.degradation, g)
        if self.canvas is None:
            return out.lr[0], hr
        return out.lr[0], hr, place_crop(h, w, top, left, self.crop, self.canvas, _placement_generator(seed))


class PairedCrops(Dataset):
    """HR and LR folders with the same file stems; LR must be exactly HR / scale. Aligned random crops."""

    def __init__(
        self,
        hr_folder: str | Path,
        lr_folder: str | Path,
        crop_size: int,
        scale: int,
        canvas: CanvasSpec | None = None,
    ) -> None:
        if crop_size % scale:
            raise ValueError(f"crop_size={crop_size} is not a multiple of scale={scale}")
        hr = {p.stem: p for p in list_images(hr_folder)}
        lr = {p.stem: p for p in list_images(lr_folder)}
        missing = sorted(set(hr) ^ set(lr))
        if missing:
            raise ValueError(
                f"paired folders differ: {missing[:5]} are in only one of {hr_folder}, {lr_folder}"
            )
        self.pairs = [(hr[k], lr[k]) for k in sorted(hr)]
        self.crop, self.scale, self.canvas = crop_size, scale, canvas

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Key) -> Sample:
        index, seed = key
        hr_path, lr_path = self.pairs[index]
        hr, lr = read_image(hr_path), read_image(lr_path)
        (_, h, w), s = hr.shape, self.scale
        if lr.shape[1:] != (h // s, w // s) or h % s or w % s:
            raise ValueError(
                f"{lr_path} is {lr.shape[2]}x{lr.shape[1]}, expected {w // s}x{h // s} (HR {w}x{h} / scale {s}); "
                "crop HR to a multiple of the scale and resize LR to match"
            )
        if min(h, w) < self.crop:
            raise ValueError(f"{hr_path} is {w}x{h}, smaller than crop_size={self.crop}")
        step = crop_step(h, w, self.canvas, s) if self.canvas else s
        top, left = crop_origin(h, w, self.crop, step, torch.Generator().manual_seed(seed))
        c = self.crop
        pair = (
            lr[:, top // s : (top + c) // s, left // s : (left + c) // s],
            hr[:, top : top + c, left : left + c],
        )
        if self.canvas is None:
            return pair
        return (*pair, place_crop(h, w, top, left, c, self.canvas, _placement_generator(seed)))
