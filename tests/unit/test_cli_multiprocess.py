"""Folder upscaling split over processes: two CPU processes under torchrun (as the trainers' DDP test), each
file written exactly once, none skipped, and a rerun with --skip-existing redoes only the missing ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from gtasr_support import lowres, tiny_gtasr_files
from gtasr_train_support import subprocess_env
from sr4k.cli.shard import Rank, device_for, rank_from_env, shard, write_atomically


def test_shards_cover_every_file_once() -> None:
    pairs = [(Path(f"{i}.png"), Path(f"out/{i}.png")) for i in range(11)]
    for world in (1, 2, 3, 11, 16):
        parts = [shard(pairs, Rank(r, world)) for r in range(world)]
        flat = [p for part in parts for p in part]
        assert sorted(flat) == sorted(pairs) and len(flat) == len(pairs)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_rank_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert rank_from_env() == Rank(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="inconsistent"):
        rank_from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="not an integer"):
        rank_from_env()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_from_env() == Rank(3, 4, 1)
    import torch

    assert device_for(torch.device("cpu"), Rank(3, 4, 1)) == torch.device("cpu")


def test_write_atomically_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a.png"

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert list(tmp_path.iterdir()) == []
    write_atomically(target, lambda p: p.write_bytes(b"ok"))
    assert target.read_bytes() == b"ok" and list(tmp_path.iterdir()) == [target]


def _run(cmd_tail: list[str], cwd: Path, status: int = 0) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "sr4k.cli",
        *cmd_tail,
    ]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env={**subprocess_env(), "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == status, proc.stderr[-3000:]
    return proc


def _done(stderr: str) -> list[tuple[str, str]]:
    """(process, input name) for every file a process reports written."""
    return re.findall(r"\[\d+/\d+, process (\d)/2\] \S*/(in\d\.png) ", stderr)


def test_two_processes_split_a_folder_and_resume(tmp_path: Path) -> None:
    _, weights, _ = tiny_gtasr_files(tmp_path / "w")
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(5):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
    args = [
        "upscale",
        "--model",
        "gtasr",
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--skip-existing",
        str(src),
        str(dst),
    ]
    first = _done(_run(args, tmp_path).stderr)
    assert sorted(name for _, name in first) == [f"in{i}.png" for i in range(5)]  # each once, none skipped
    assert {proc for proc, _ in first} == {"1", "2"}  # both processes worked
    assert sorted(p.name for p in dst.iterdir()) == [f"in{i}.png" for i in range(5)]
    assert all(Image.open(p).size == (64, 64) for p in dst.iterdir())
    # Resume: two outputs lost, one replaced by a marker that must survive (existing outputs are skipped).
    (dst / "in1.png").unlink()
    (dst / "in4.png").unlink()
    Image.new("RGB", (3, 3)).save(dst / "in2.png")
    second = _run(args, tmp_path).stderr
    assert sorted(name for _, name in _done(second)) == ["in1.png", "in4.png"]
    assert "already done" in second and Image.open(dst / "in2.png").size == (3, 3)


def test_each_process_reports_its_failures_and_the_others_finish(tmp_path: Path) -> None:
    """in0 (process 1's first file) is damaged: process 1 goes on to in2 and in4, process 2 is not stopped by
    process 1's failure, and the launch ends with status 1."""
    _, weights, _ = tiny_gtasr_files(tmp_path / "w")
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
    data = (src / "in0.png").read_bytes()
    (src / "in0.png").write_bytes(data[: len(data) // 2])
    args = ["upscale", "--weights", str(weights), "--device", "cpu", str(src), str(dst)]
    stderr = _run(args, tmp_path, status=1).stderr
    assert sorted(p.name for p in dst.iterdir()) == [f"in{i}.png" for i in range(1, 6)]
    assert re.search(r"1 of 3 images failed in process 1/2: in0\.png \(is not a readable image", stderr)
    assert "images failed in process 2/2" not in stderr  # process 2 had none to list
