"""The folder loop of ``sr4k upscale``: read, upscale, write every (input, output) pair, with the file I/O off the
model's path.

Writing a 4096² output is slower than upscaling it on a GPU: quantising, PNG-encoding (zlib level 1) and renaming
one 4096² RGB output takes 1.7 s of one core of a 2-core EPYC (``benchmarks/folder_io.py``), against 0.82 s for
GTASR and 1.45 s for OP4KSR on an H200 (benchmarks/RESULTS.md). Done in turn, the GPU would wait for the disk most of the time. So with
``io_workers`` > 0 (the CLI's ``--io-workers``, default one per core up to 4):

- the next input is read by a reader thread while the model works on the current one;
- outputs are written by ``io_workers`` writer threads. Pillow's PNG encoder, zlib and torch's quantisation release
  the GIL, so the writers run in parallel with each other and with the model.

At most ``io_workers`` outputs wait for or are being written, plus the one the model is working on, which bounds
the host memory (one 4096² float32 RGB output is 192 MiB). Outputs are the same files, byte for byte, as with
``io_workers=0`` (everything in turn).

Errors: a file that cannot be read or upscaled (a damaged image, one too small for the requested size) is passed
over when ``skip(job, error)`` says so, and the run goes on with the next file; ``FolderRun.failed`` lists those
files. Any other error stops the run, as does every failed write (a full disk or a lost mount would fail every
later write too): the writes already under way are finished (they are good files) and the first error is raised.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

__all__ = ["DEFAULT_IO_WORKERS", "Failure", "FolderRun", "Job", "Skip", "run_folder"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


# Writer threads by default: one per core, at most 4. On 2 cores, 2 writers take a folder of 4096² PNG outputs from
# 2.56 to 1.21 s per image at GTASR's H200 speed (0.82 s), and from 3.19 to 1.76 s at OP4KSR's (1.45 s); 4 writers
# hold at most 5 outputs (about 1 GiB of host memory at 4096²). benchmarks/RESULTS.md, "Folder I/O".
DEFAULT_IO_WORKERS = min(4, usable_cores())


@dataclass(frozen=True)
class Job:
    """One file of a folder run: its 1-based place in this process's list, input and output paths."""

    index: int
    src: Path
    dst: Path


@dataclass(frozen=True)
class Failure:
    """A file the run passed over: its job and the error's message."""

    job: Job
    reason: str


@dataclass(frozen=True)
class FolderRun:
    """What a folder run did: images written, the wall time from the first read to the last write (s), and the
    files passed over after a read or model error (``skip``)."""

    images: int
    seconds: float
    failed: tuple[Failure, ...] = ()

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(self.images, 1)


Load = Callable[[Path], Tensor]
Model = Callable[[Tensor], Tensor]
Save = Callable[[Job, Tensor, Tensor], None]  # (job, input image, output image): writes job.dst
Skip = Callable[[Job, Exception], bool]  # (job, read or model error): True to pass over the file and go on


def run_folder(
    jobs: Sequence[Job],
    load: Load,
    model: Model,
    save: Save,
    *,
    io_workers: int = DEFAULT_IO_WORKERS,
    done: Callable[[Job, Tensor, Tensor, float, float], None] | None = None,
    skip: Skip | None = None,
) -> FolderRun:
    """Upscale ``jobs`` in order: ``load(src)`` -> ``model(image)`` -> ``save(job, image, out)``.

    ``io_workers`` = 0 runs the three in turn in this thread; N > 0 reads one file ahead in a reader thread and
    writes in N writer threads (module docstring). ``done(job, image, out, model_s, save_s)`` is called after each
    write (from a writer thread when N > 0). The model always runs in the calling thread, one image at a time.
    A read or model error (an ``Exception``) for which ``skip(job, error)`` returns True is recorded in
    ``FolderRun.failed`` and the run goes on; ``skip`` may log it. Any other error of a read, the model or a write
    is raised, after the writes under way have finished.
    """
    if io_workers < 0:
        raise ValueError(
            f"io_workers={io_workers}; use 0 (read, upscale, write in turn) or more writer threads"
        )
    start = time.perf_counter()

    def write(job: Job, image: Tensor, out: Tensor, model_s: float) -> None:
        t0 = time.perf_counter()
        save(job, image, out)
        if done is not None:
            done(job, image, out, model_s, time.perf_counter() - t0)

    failed: list[Failure] = []

    def attempt(job: Job, step: Callable[[], Tensor]) -> Tensor | None:
        """``step()``, or None when it raised an error that ``skip`` passes over (recorded in ``failed``)."""
        try:
            return step()
        except Exception as err:  # not BaseException: Ctrl-C and SystemExit always stop the run
            if skip is None or not skip(job, err):
                raise
            failed.append(Failure(job, str(err) or type(err).__name__))
            return None

    def upscale(job: Job, image: Tensor) -> tuple[Tensor | None, float]:
        t0 = time.perf_counter()
        out = attempt(job, lambda: model(image))
        return out, time.perf_counter() - t0

    def finish() -> FolderRun:
        return FolderRun(len(jobs) - len(failed), time.perf_counter() - start, tuple(failed))

    if io_workers == 0:
        for job in jobs:
            image = attempt(job, lambda job=job: load(job.src))
            if image is None:
                continue
            out, model_s = upscale(job, image)
            if out is not None:
                write(job, image, out, model_s)
        return finish()

    pending: deque[Future[None]] = deque()
    ahead: Future[Tensor] | None = None
    with (
        ThreadPoolExecutor(1, thread_name_prefix="sr4k-read") as reader,
        ThreadPoolExecutor(io_workers, thread_name_prefix="sr4k-write") as writers,
    ):
        try:
            ahead = reader.submit(load, jobs[0].src) if jobs else None
            for k, job in enumerate(jobs):
                read = ahead
                assert read is not None
                ahead = reader.submit(load, jobs[k + 1].src) if k + 1 < len(jobs) else None
                image = attempt(job, read.result)  # a failed read raises here (naming its file) or is skipped
                if image is None:
                    continue
                out, model_s = upscale(job, image)
                if out is None:
                    continue
                while len(pending) >= io_workers:  # bound the outputs held in memory
                    _collect(pending, wait(pending, return_when=FIRST_COMPLETED).done)
                _collect(pending, [f for f in pending if f.done()])  # a failed write stops the run early
                pending.append(writers.submit(write, job, image, out, model_s))
                del image, out
            _collect(pending, wait(pending).done)
        except BaseException:
            if ahead is not None:
                ahead.cancel()
            raise  # leaving the `with` waits for the writes under way: they are good files
    return finish()


def _collect(pending: deque[Future[None]], finished: Iterable[Future[None]]) -> None:
    """Drop finished writes from ``pending``, raising the first one's error."""
    for f in list(finished):
        pending.remove(f)
        f.result()
