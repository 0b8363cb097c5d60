"""The OP4KSR trainer's test fixtures: a small FLUX and F16 VAE of the real families, paired data, a base config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.training.op4ksr.config import OP4KSRTrainConfig
from sr4k.training.op4ksr.toy import TOY_F16_VAE, TOY_FLUX
from tiny_models import deterministic_state_dict

__all__ = [
    "CROP",
    "HR_SIDE",
    "SCALE",
    "SMALL_FLUX",
    "SMALL_VAE",
    "config",
    "data",
    "fresh_accelerate_state",
    "small_flux",
    "small_vae",
]

SMALL_FLUX, SMALL_VAE = TOY_FLUX, TOY_F16_VAE  # toy sizes of the real families (training/op4ksr/toy.py)
HR_SIDE, SCALE, CROP = 160, 4, 128


@pytest.fixture(autouse=True)
def fresh_accelerate_state() -> None:
    """accelerate keeps process-wide singletons; each run here is a new "process" (as accelerate's own tests do)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def small_flux() -> torch.nn.Module:
    """The small FLUX (diffusers layout) with deterministic weights."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(**SMALL_FLUX)
    model.load_state_dict(
        deterministic_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}), assign=True
    )
    return model


def small_vae() -> F16VAE:
    """The small F16 VAE with deterministic weights."""
    with torch.device("meta"):
        vae = F16VAE(SMALL_VAE, decode_mode="aligned")
    vae.load_state_dict(
        deterministic_state_dict({k: tuple(v.shape) for k, v in vae.state_dict().items()}), assign=True
    )
    return vae


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four smooth, colourful HR images and their bicubic x4 LR twins (paired folders)."""
    root = tmp_path_factory.mktemp("op4ksr_data")
    hr_dir, lr_dir = root / "hr", root / "lr"
    hr_dir.mkdir(), lr_dir.mkdir()
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, HR_SIDE)
    for i in range(4):
        fy, fx, phase = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 1, 3)
        img = 0.5 + 0.5 * np.sin(2 * np.pi * (x[None, :, None] * fx + x[:, None, None] * fy + phase))
        im = Image.fromarray((img * 255).astype(np.uint8))
        im.save(hr_dir / f"img{i}.png")
        im.resize((HR_SIDE // SCALE,) * 2, Image.BICUBIC).save(lr_dir / f"img{i}.png")
    return hr_dir, lr_dir


def config(data: tuple[Path, Path], out: Path, **changes: object) -> OP4KSRTrainConfig:
    """A fast CPU config (latent MSE only) writing to ``out``, with ``changes`` applied."""
    base = OP4KSRTrainConfig(
        data_dir=str(data[0]),
        lr_dir=str(data[1]),
        crop_size=CROP,
        scale=SCALE,
        num_workers=0,
        lora_rank=4,
        lora_alpha=4.0,
        lr=3e-3,
        steps=20,
        mixed_precision="no",
        gradient_checkpointing=False,
        base_dtype="float32",
        export_dtype="float32",
        log_every=5,
        checkpoint_every=10,
        output_dir=str(out),
        perceptual="none",
        perceptual_weight=0.0,
        lambda_ap=0.0,  # latent MSE only (the recipe: test_train_op4ksr_recipe)
    )
    return dataclasses.replace(base, **changes)
