"""Helpers for the GTASR trainer tests: a synthetic image folder, tiny configs and a paired evaluation."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from sr4k.training.gtasr.config import GTASRTrainConfig, resolve_config
from sr4k.training.gtasr.data import CropDataset, list_images, make_pairs
from sr4k.training.gtasr.perceptual import standin_perceptual
from sr4k.training.gtasr.steps import stage1_losses, stage2_losses


def one_thread() -> Iterator[None]:
    """The tiny network is latency-bound: one thread avoids oversubscribing shared 2-core runners."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_images(folder: Path, count: int = 12, seed: int = 0) -> Path:
    """Smooth multi-frequency RGB patterns of random sizes (some smaller than the crop: reflect padding)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(28, 60, 2))
        rows, cols = np.mgrid[0:h, 0:w] / 8.0
        f, ph = rng.uniform(0.5, 2.0, 3), rng.uniform(0.0, 6.0, 3)
        img = np.stack(
            [0.5 + 0.5 * np.sin(f[c] * cols + ph[c]) * np.cos(f[(c + 1) % 3] * rows) for c in range(3)], -1
        )
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def tiny_config(stage: int, data: Path, out: Path, **overrides: Any) -> GTASRTrainConfig:
    return resolve_config(
        stage, "tiny", overrides={"data_dirs": [str(data)], "output_dir": str(out), **overrides}
    )


def window_means(history: list[dict[str, float]], key: str, n: int) -> tuple[float, float]:
    """Mean of ``key`` over the first and the last ``n`` logged steps."""
    values = [h[key] for h in history]
    return statistics.mean(values[:n]), statistics.mean(values[-n:])


@torch.no_grad()
def paired_objective(
    config: GTASRTrainConfig,
    student: nn.Module,
    data: Path,
    frozen: nn.Module | None = None,
    draws: int = 8,
    step: int | None = None,
) -> dict[str, float]:
    """The stage objective of ``student`` (eval mode) averaged over fixed batches and fixed draws.

    Evaluating two weight sets on the same batches, noises and CT indices makes the comparison paired.
    """
    dataset = CropDataset(list_images([data], ("png",)), config.gt_size, seed=1234)
    step = config.total_steps if step is None else step
    was_training = student.training
    student.eval()
    sums: dict[str, float] = {}
    for k in range(draws):
        hr = torch.stack([dataset[k * config.batch_size + i] for i in range(config.batch_size)])
        batch = make_pairs(hr, "bicubic", 4, torch.Generator())
        gen = torch.Generator().manual_seed(k)
        if config.stage == 1:
            losses = stage1_losses(student, student, batch, config, step, standin_perceptual, gen)
        else:
            losses = stage2_losses(student, student, frozen, batch, config, step, standin_perceptual, gen)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value) / draws
    student.train(was_training)
    return sums


def smoke_config(tmp_path: Path) -> Path:
    data = write_images(tmp_path / "data", count=6)
    toml = tmp_path / "smoke.toml"
    toml.write_text(
        f'preset = "tiny"\ndata_dirs = ["{data.as_posix()}"]\noutput_dir = "{(tmp_path / "out").as_posix()}"\n'
        "total_steps = 2\nsave_every = 2\n"
    )
    return toml


def read_log(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env
