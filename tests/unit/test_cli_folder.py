"""The folder loop of ``sr4k upscale`` (``cli/folder.py``): reads ahead and writes in background threads with the
same files as the serial loop, a bound on the outputs held, and errors that stop the run without partial files.

The loop is run with the CLI's real reader and writer (``load_image``, ``save_image`` via ``write_atomically``) on
real PNG files; where the test must know the order of events, the model or the writer also waits on an event
that the other side sets, so the overlap is shown by the order of calls, not by timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gtasr_support import lowres, tiny_gtasr_files
from sr4k.cli import folder
from sr4k.cli.folder import Job, run_folder
from sr4k.cli.images import load_image, save_image
from sr4k.cli.main import main
from sr4k.cli.shard import write_atomically

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import folder_io  # benchmarks/ is a script folder, not a package

WAIT_S = 20.0  # generous: an event that is set at all is set within milliseconds
HOLD_S = 0.5  # how long a held write waits: far longer than reading and upscaling a few 16x16 images


def _x2(image: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in upscaler (bicubic x2), so outputs can be compared byte for byte."""
    return F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)


def _save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
    write_atomically(job.dst, lambda path: save_image(out, path))


def _folder(root: Path, n: int, size: int = 24) -> list[Job]:
    src, dst = root / "in", root / "out"
    src.mkdir(parents=True)
    dst.mkdir()
    jobs = []
    for i in range(n):
        Image.fromarray(lowres(i, size, size)).save(src / f"in{i}.png")
        jobs.append(Job(i + 1, src / f"in{i}.png", dst / f"in{i}.png"))
    return jobs


def _no_partials(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("workers", [1, 3])
def test_threaded_loop_writes_the_same_files_as_the_serial_one(tmp_path: Path, workers: int) -> None:
    serial, threaded = _folder(tmp_path / "a", 5), _folder(tmp_path / "b", 5)
    seen: list[int] = []
    run_folder(serial, load_image, _x2, _save, io_workers=0)
    run = run_folder(
        threaded, load_image, _x2, _save, io_workers=workers, done=lambda job, *_: seen.append(job.index)
    )
    assert run.images == 5 and sorted(seen) == [1, 2, 3, 4, 5]
    for a, b in zip(serial, threaded, strict=True):
        assert a.dst.read_bytes() == b.dst.read_bytes()
        assert Image.open(b.dst).size == (48, 48)
    _no_partials(threaded[0].dst.parent)


def test_next_file_is_read_while_the_model_works(tmp_path: Path) -> None:
    jobs = _folder(tmp_path, 2)
    second_read = threading.Event()

    def load(path: Path) -> torch.Tensor:
        image = load_image(path)
        if path == jobs[1].src:
            second_read.set()
        return image

    def model(image: torch.Tensor) -> torch.Tensor:
        if not second_read.is_set():  # the first image: the reader must fetch the second one meanwhile
            assert second_read.wait(WAIT_S), "the next input was not read while the model worked"
        return _x2(image)

    run_folder(jobs, load, model, _save, io_workers=1)
    assert all(j.dst.is_file() for j in jobs)


def test_model_works_on_the_next_image_while_the_last_is_written(tmp_path: Path) -> None:
    jobs = _folder(tmp_path, 3)
    calls: list[int] = []
    second_model_call = threading.Event()

    def model(image: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            second_model_call.set()
        return _x2(image)

    def save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
        if job.index == 1:  # writing image 1 finishes only once the model has started on image 2
            assert second_model_call.wait(WAIT_S), "the model waited for the write"
        _save(job, image, out)

    run_folder(jobs, load_image, model, save, io_workers=2)
    assert all(j.dst.is_file() for j in jobs)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_outputs_held_in_memory_are_bounded(tmp_path: Path, workers: int) -> None:
    """Outputs made but not yet written reach io_workers + 1 (the +1: the one being made) and no more, with a
    writer far slower than the model."""
    jobs = _folder(tmp_path, 8, size=16)
    lock, alive, most, calls = threading.Lock(), [0], [0], [0]
    gate = (
        threading.Event()
    )  # held shut: the first writes finish only after HOLD_S, unless the bound is broken

    def model(image: torch.Tensor) -> torch.Tensor:
        with lock:
            calls[0] += 1
            alive[0] += 1
            most[0] = max(most[0], alive[0])
            if calls[0] > workers + 1:
                gate.set()
        return _x2(image)

    def save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
        gate.wait(HOLD_S)
        _save(job, image, out)
        with lock:
            alive[0] -= 1

    run_folder(jobs, load_image, model, save, io_workers=workers)
    assert most[0] == workers + 1
    assert all(j.dst.is_file() for j in jobs)


def test_failed_write_stops_the_run_and_leaves_only_whole_files(tmp_path: Path) -> None:
    jobs = _folder(tmp_path, 6)
    jobs[1].dst.mkdir()  # a folder where image 2's output should go: the rename onto it fails
    failed = threading.Event()

    def save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
        try:
            _save(job, image, out)
        except OSError:
            failed.set()
            raise

    def model(image: torch.Tensor) -> torch.Tensor:
        failed.wait(1.0)  # give the failure time to be seen before the next images are handed out
        return _x2(image)

    with pytest.raises(OSError) as err:
        run_folder(jobs, load_image, model, save, io_workers=2)
    assert "in1.png" in str(err.value)
    written = [j for j in jobs if j.dst.is_file()]
    assert jobs[0] in written and jobs[-1] not in written  # stopped early
    for j in written:  # every file there is whole
        assert Image.open(j.dst).size == (48, 48)
    _no_partials(jobs[0].dst.parent)


def test_unreadable_input_stops_the_run_with_its_name(tmp_path: Path) -> None:
    jobs = _folder(tmp_path, 4)
    jobs[2].src.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="in2.png is not a readable image"):
        run_folder(jobs, load_image, _x2, _save, io_workers=2)
    assert [j.dst.is_file() for j in jobs] == [True, True, False, False]
    _no_partials(jobs[0].dst.parent)


def test_interrupt_during_the_model_finishes_the_writes_under_way(tmp_path: Path) -> None:
    jobs = _folder(tmp_path, 4)
    calls: list[int] = []
    writing, interrupted = threading.Event(), threading.Event()

    def model(image: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C while image 2 is upscaled and image 1 is being written
            assert writing.wait(WAIT_S)
            interrupted.set()
            raise KeyboardInterrupt
        return _x2(image)

    def save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
        writing.set()
        interrupted.wait(WAIT_S)  # a slow disk: the write is still under way when Ctrl-C comes
        _save(job, image, out)

    with pytest.raises(KeyboardInterrupt):
        run_folder(jobs, load_image, model, save, io_workers=2)
    assert Image.open(jobs[0].dst).size == (48, 48)  # finished, not lost
    assert not jobs[1].dst.exists()
    _no_partials(jobs[0].dst.parent)


def test_negative_workers_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="io_workers=-1"):
        run_folder(_folder(tmp_path, 1), load_image, _x2, _save, io_workers=-1)


def test_cli_io_workers_gives_the_same_files_and_logs_each_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    _, weights, _ = tiny_gtasr_files(tmp_path / "w")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
    outs = {}
    for workers in ("0", "2"):
        dst = tmp_path / f"out{workers}"
        argv = ["upscale", "--weights", str(weights), "--device", "cpu", "--io-workers", workers]
        with caplog.at_level("INFO", logger="sr4k"):
            assert main([*argv, str(src), str(dst)]) == 0
        outs[workers] = {p.name: np.array(Image.open(p)).astype(int) for p in dst.iterdir()}
    assert sorted(outs["2"]) == ["in0.png", "in1.png", "in2.png"]
    for name, a in outs["0"].items():  # same network, same seed; CPU kernels may round a few pixels apart
        assert np.abs(a - outs["2"][name]).max() <= 1
    log = caplog.text
    assert log.count("written in") == 6 and "3 images in" in log
    with pytest.raises(SystemExit) as bad:
        main(["upscale", "--io-workers", "-1", str(src), str(tmp_path / "x")])
    assert bad.value.code == 2 and "give a whole number of threads" in capsys.readouterr().err


def test_folder_io_benchmark_smoke() -> None:
    rows = folder_io.main(["--smoke", "--no-write"])["rows"]
    assert [(r["workers"], r["images"]) for r in rows] == [(0, 3), (2, 3)]
    assert all(r["s_per_image"] >= 0.01 and r["write_s"] > 0 for r in rows)  # the GPU wait is the floor
    rows = folder_io.main(["--smoke", "--no-write", "--model", "gtasr", "--device", "cpu"])["rows"]
    assert [(r["model"], r["workers"], r["images"]) for r in rows] == [("GTASR", 0, 3), ("GTASR", 2, 3)]
    assert rows[0]["mib_per_output"] == 3 * 128 * 128 * 4 / 2**20  # the network's x4 output, float32


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux feature")
def test_default_writers_follow_the_cores_this_process_may_use() -> None:
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from sr4k.cli.folder import DEFAULT_IO_WORKERS; print(DEFAULT_IO_WORKERS)"
    )
    one_core = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert one_core.stdout.strip() == "1"
    assert folder.DEFAULT_IO_WORKERS == min(4, len(os.sched_getaffinity(0)))
