"""The resumable training stream: which image and seed each process's i-th sample uses.

Every sample is a pure function of its *position* in the run's global stream, so a resumed run sees exactly the
samples the uninterrupted run would have seen, on any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from .seeds import derive_seed

__all__ = ["Key", "StreamSampler"]

Key = tuple[int, int]  # (image index, sample seed)


class StreamSampler(Sampler[Key]):
    """Endless ``(image_index, sample_seed)`` keys of one process, starting at its ``start``-th sample.

    Global position of this process's i-th sample: micro-batch m = i // batch, slot j = i % batch,
    ``pos = (m * world + rank) * batch + j``; epoch ``pos // n`` shuffles the n images with its own seed.
    """

    def __init__(
        self, n_images: int, batch_size: int, seed: int, *, start: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if n_images < 1 or batch_size < 1 or not 0 <= rank < world:
            raise ValueError(
                f"StreamSampler: n_images={n_images}, batch_size={batch_size}, rank={rank}/{world}"
            )
        self.n, self.batch, self.seed, self.start, self.rank, self.world = (
            n_images,
            batch_size,
            seed,
            start,
            rank,
            world,
        )

    def position(self, i: int) -> int:
        micro, slot = divmod(i, self.batch)
        return (micro * self.world + self.rank) * self.batch + slot

    def __iter__(self) -> Iterator[Key]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        i = self.start
        while True:
            pos = self.position(i)
            if pos // self.n != epoch:
                epoch = pos // self.n
                order = torch.randperm(
                    self.n, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch))
                )
            yield int(order[pos % self.n]), derive_seed(self.seed, epoch, pos)
            i += 1
