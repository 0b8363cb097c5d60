"""Folder runs that meet bad files: a file that cannot be read or upscaled is logged and passed over, the others
are written, and the run ends with status 1 and a list of the failed files. Hidden files are not inputs, files of
other kinds are reported once, and inputs that would share an output are refused before any model loads.

Run through ``main([...])`` with the tiny GTASR checkpoint (``conftest.files``) on real files, and through
``run_folder`` with the CLI's real reader and writer.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gtasr_support import lowres
from sr4k.cli.folder import Job, run_folder
from sr4k.cli.images import load_image, save_image
from sr4k.cli.main import main
from sr4k.cli.shard import write_atomically


def _truncated_png(path: Path) -> None:
    """A PNG whose header reads (so its size is known) but whose pixels are cut off half way."""
    Image.fromarray(lowres(9, 32, 32)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _x2(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)


def _save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
    write_atomically(job.dst, lambda path: save_image(out, path))


@pytest.mark.parametrize("workers", [0, 2])
def test_run_folder_passes_over_read_and_model_errors_that_skip_accepts(tmp_path: Path, workers: int) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    jobs = []
    for i in range(5):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
        jobs.append(Job(i + 1, src / f"in{i}.png", dst / f"in{i}.png"))
    _truncated_png(jobs[1].src)
    calls = [0]

    def model(image: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 2:  # the third file (the second that reads): an error of the model
            raise ValueError("too small for the requested size")
        return _x2(image)

    seen: list[tuple[int, str]] = []

    def skip(job: Job, err: Exception) -> bool:
        seen.append((job.index, type(err).__name__))
        return isinstance(err, ValueError)

    run = run_folder(jobs, load_image, model, _save, io_workers=workers, skip=skip)
    assert seen == [(2, "ValueError"), (3, "ValueError")]
    assert [(f.job.index, "truncated" in f.reason or "too small" in f.reason) for f in run.failed] == [
        (2, True),
        (3, True),
    ]
    assert run.images == 3
    assert sorted(p.name for p in dst.iterdir()) == ["in0.png", "in3.png", "in4.png"]


@pytest.mark.parametrize("workers", [0, 2])
def test_run_folder_stops_on_errors_that_skip_refuses(tmp_path: Path, workers: int) -> None:
    """An error ``skip`` does not accept (the CLI: out of memory, a bug) still stops the run at once."""
    src = tmp_path / "in"
    src.mkdir()
    jobs = []
    for i in range(4):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
        jobs.append(Job(i + 1, src / f"in{i}.png", tmp_path / "out" / f"in{i}.png"))

    def model(image: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_folder(jobs, load_image, model, _save, io_workers=workers, skip=lambda job, err: False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_cli_folder_goes_on_after_bad_files_and_lists_them(
    files: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture, workers: str
) -> None:
    pth, _, _ = files
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        Image.fromarray(lowres(i, 32, 32)).save(src / f"in{i}.png")
    _truncated_png(src / "bad.png")  # fails when read, in the reader
    Image.fromarray(lowres(7, 1, 1)).save(src / "tiny.png")  # x96 to the long side: beyond GTASR's x64
    (src / "._in0.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # AppleDouble
    (src / ".in1.partial-123-abc.png").write_bytes(b"half a PNG")  # a killed run's temporary
    (src / "notes.txt").write_text("not an image")
    (src / "photo.heic").write_bytes(b"\x00")
    argv = ["upscale", "--weights", str(pth), "--device", "cpu", "--long-side", "96", "--io-workers", workers]
    with caplog.at_level(logging.INFO, logger="sr4k"):
        assert main([*argv, str(src), str(dst)]) == 1
    assert sorted(p.name for p in dst.iterdir()) == ["in0.png", "in1.png", "in2.png"]
    assert all(Image.open(p).size == (96, 96) for p in dst.iterdir())
    log = caplog.text
    assert "skipped 2 file(s) with unsupported suffixes: .heic, .txt" in log
    summary = next(line for line in log.splitlines() if "images failed" in line)
    assert "2 of 5 images failed: bad.png (is not a readable image (image file is truncated)" in summary
    assert "tiny.png (1x1 -> 96x96 is x96.0, more than GTASR's" in summary
    assert "._in0" not in log and ".partial-" not in log


def test_cli_inputs_that_share_an_output_are_refused_before_loading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(lowres(1, 16, 16)).save(src / "a.png")
    Image.fromarray(lowres(2, 16, 16)).save(src / "A.jpg")  # a.png on Windows and macOS file systems
    Image.fromarray(lowres(3, 16, 16)).save(src / "b.png")
    # The weights do not exist: the refusal must come before the model would load.
    argv = ["upscale", "--weights", str(tmp_path / "none.pth"), str(src), str(tmp_path / "out")]
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main(argv) == 1
    assert f"inputs {src / 'A.jpg'} and {src / 'a.png'} would both be written to" in caplog.text
    assert "rename one of them" in caplog.text and "none.pth" not in caplog.text
    assert not (tmp_path / "out").exists()


def test_two_writes_to_one_output_never_share_a_temporary(tmp_path: Path) -> None:
    """Two writer threads on one output, both mid-write at once: each has its own temporary, both renames
    succeed and the output is one whole file."""
    target = tmp_path / "a.png"
    both_writing = threading.Barrier(2, timeout=20)
    temporaries: list[Path] = []
    errors: list[BaseException] = []

    def write(path: Path) -> None:
        temporaries.append(path)
        save_image(torch.rand(1, 3, 8, 8), path)
        both_writing.wait()  # neither renames until both temporaries are written

    def worker() -> None:
        try:
            write_atomically(target, write)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(temporaries)) == 2
    assert Image.open(target).size == (8, 8) and [p.name for p in tmp_path.iterdir()] == ["a.png"]
