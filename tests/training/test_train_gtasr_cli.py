"""The GTASR trainer's command line: in process and through ``accelerate launch`` (the README command)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gtasr_train_support import one_thread, read_log, smoke_config, subprocess_env
from sr4k.training.gtasr import main

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_main_reads_the_file_and_overrides(tmp_path):
    toml = smoke_config(tmp_path)
    assert main(["--stage", "1", "--config", str(toml), "--total_steps", "3", "--save_every=3"]) == 0
    out = tmp_path / "out"
    assert [e["step"] for e in read_log(out)] == [1.0, 2.0, 3.0]
    assert (out / "gtasr_stage1.pth").is_file() and (
        out / "checkpoint-00000003" / "trainer_state.json"
    ).is_file()
    with pytest.raises(ValueError, match="valid GTASRTrainConfig keys"):
        main(["--stage", "1", "--config", str(toml), "--learning-rate", "1"])


def test_accelerate_launch_runs_the_module(tmp_path):
    toml = smoke_config(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--cpu",
        "-m",
        "sr4k.training.gtasr",
        "--stage",
        "1",
        "--config",
        str(toml),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = read_log(tmp_path / "out")
    assert [e["step"] for e in log] == [1.0, 2.0] and all(e["total"] > 0 for e in log)
    ckpt = torch.load(tmp_path / "out" / "gtasr_stage1.pth", weights_only=True)
    assert set(ckpt) == {"params", "params_ema"}
