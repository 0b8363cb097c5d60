"""HR crops for the F16 decoder trainer, each a pure function of its position in the training stream.

Keys come from ``op4ksr.data.StreamSampler`` (image index, sample seed), so a resumed run, on any number of
processes, sees exactly the crops the uninterrupted run would have seen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ...srkit.image_io import read_image
from ..op4ksr.data import Key, crop_origin, list_images

__all__ = ["HRCrops"]


class HRCrops(Dataset):
    """Folder of HR images -> random ``crop_size`` crops ``[3, c, c]`` in [0, 1], flipped left-right at random."""

    def __init__(self, folder: str | Path, crop_size: int, hflip: bool = True) -> None:
        self.files, self.crop, self.hflip = list_images(folder), crop_size, hflip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Key) -> torch.Tensor:
        index, seed = key
        image = read_image(self.files[index])[:3]
        _, h, w = image.shape
        if min(h, w) < self.crop:
            raise ValueError(
                f"{self.files[index]} is {w}x{h}, smaller than crop_size={self.crop}; remove it or lower crop_size"
            )
        g = torch.Generator().manual_seed(seed)
        top, left = crop_origin(h, w, self.crop, 1, g)
        crop = image[:, top : top + self.crop, left : left + self.crop]
        if self.hflip and bool(torch.randint(2, (1,), generator=g)):
            crop = crop.flip(-1)
        return crop.contiguous()
