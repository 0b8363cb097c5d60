"""Two-process data-parallel GTASR training on CPU (accelerate MULTI_CPU over gloo), from the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gtasr_train_support import read_log, smoke_config, subprocess_env


@pytest.mark.slow
def test_two_process_data_parallel_on_cpu(tmp_path):
    """torchrun + ACCELERATE_USE_CPU gives accelerate's MULTI_CPU (gloo DDP): two ranks, one shared log."""
    toml = smoke_config(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "sr4k.training.gtasr",
        "--stage",
        "1",
        "--config",
        str(toml),
    ]
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        env={**subprocess_env(), "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "checkpoint-00000002"
    assert (folder / "random_states_0.pkl").is_file() and (folder / "random_states_1.pkl").is_file()
    assert "x 2 process(es)" in proc.stderr
    assert [e["step"] for e in read_log(tmp_path / "out")] == [1.0, 2.0]
