"""Folder upscaling over several processes (``accelerate launch`` or ``torchrun``), one GPU each.

The launcher sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; no process group is needed, since the processes
never talk: process r of N takes every N-th file of the sorted input list, starting at r. The list is the
same in every process (sorted, taken before anything is written), so each file belongs to exactly one
process. With ``--skip-existing`` a process passes over outputs already on disk, which makes an interrupted
run resumable; outputs are written to a temporary name and renamed, so a killed process never leaves a
truncated file that a resumed run would skip.

A process that passed over files (unreadable inputs) must not exit before the others: a launcher that sees one
process fail stops the rest, which would lose their remaining files. So at the end every process meets the others
(:func:`failures_everywhere`), and all exit with status 1 if any file failed anywhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

__all__ = ["Rank", "device_for", "failures_everywhere", "rank_from_env", "shard", "write_atomically"]


@dataclass(frozen=True)
class Rank:
    """This process's place among the launched ones (``world`` = 1 without a launcher)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def __str__(self) -> str:
        return f"process {self.rank + 1}/{self.world}" if self.world > 1 else "single process"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(
            f"environment variable {name}={raw!r} is not an integer (set by the launcher)"
        ) from err


def rank_from_env() -> Rank:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (torchrun and ``accelerate launch`` set all three)."""
    world = _int_env("WORLD_SIZE", 1)
    rank = _int_env("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent: need 0 <= RANK < WORLD_SIZE")
    return Rank(rank, world, _int_env("LOCAL_RANK", rank))


def device_for(device: torch.device, rank: Rank) -> torch.device:
    """The GPU of this process on its machine (``cuda:LOCAL_RANK``) when several run; else ``device``."""
    if device.type != "cuda" or rank.world == 1 or device.index is not None:
        return device
    count = torch.cuda.device_count()
    if rank.local_rank >= count:
        raise ValueError(
            f"LOCAL_RANK {rank.local_rank} but this machine has {count} CUDA device(s); launch at "
            f"most {count} processes per machine (accelerate launch --num_processes {count})"
        )
    return torch.device("cuda", rank.local_rank)


def shard(pairs: list[tuple[Path, Path]], rank: Rank) -> list[tuple[Path, Path]]:
    """This process's share of the (input, output) pairs: every ``world``-th one from index ``rank``."""
    return pairs[rank.rank :: rank.world]


# How long a process that has finished waits for the slowest one. Generous: with --skip-existing one process may
# have nothing left to do while another has hours of images.
MEET_TIMEOUT = timedelta(days=7)


def failures_everywhere(rank: Rank, failed: int) -> int:
    """The number of failed files over all processes, once every process has finished (``failed`` alone when
    this is the only process, or when no launcher set ``MASTER_ADDR`` and ``MASTER_PORT`` to meet at).

    The wait assumes a launcher that stops every process when one fails, as torchrun and accelerate do; under
    ``srun`` use ``--kill-on-bad-exit``, or a crashed process leaves the others waiting for it."""
    if rank.world == 1 or not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
        return failed
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank.rank, world_size=rank.world, timeout=MEET_TIMEOUT)
    try:
        total = torch.tensor([failed], dtype=torch.int64)
        dist.all_reduce(total)
        return int(total.item())
    finally:
        dist.destroy_process_group()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename to ``path``; the temporary keeps the suffix (the image format follows it).

    The temporary name is unique to this call (process id and a random part), so two writes to one path, from
    two threads or processes, never share a temporary file; the last rename wins.
    """
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
