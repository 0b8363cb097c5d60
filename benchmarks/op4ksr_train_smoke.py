"""OP4KSR LoRA trainer smoke runs: steps/s and loss curves on a small synthetic set (CPU by default).

The models are of the real families at toy size (diffusers FLUX with hidden 32 and one block of each kind; F16
geometry VAE with 16-channel levels), random weights, so the numbers say how fast the *training loop* runs and
that each recipe's terms fall; they say nothing about SR quality. Two recipes:

  latent   latent MSE only (the cheapest: no decoder pass)
  default  the shipped recipe: latent MSE + perceptual + L_AP (domain difference); the perceptual term is
           LPIPS-VGG with --vgg16 FILE, else the multi-scale L1 stand-in (CPU machines have no VGG16 weights)

    python benchmarks/op4ksr_train_smoke.py --steps 24 [--recipes latent,default] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, append_results, device_name, markdown_table
from PIL import Image

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.training.op4ksr import train
from sr4k.training.op4ksr.config import OP4KSRTrainConfig
from sr4k.training.op4ksr.toy import TOY_F16_VAE, TOY_FLUX

SIDE, SCALE = 160, 4


def make_data(root: Path, n: int = 4) -> tuple[Path, Path]:
    """Smooth colourful HR images and their bicubic x4 LR twins."""
    hr_dir, lr_dir = root / "hr", root / "lr"
    hr_dir.mkdir(), lr_dir.mkdir()
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, SIDE)
    for i in range(n):
        fy, fx, phase = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 1, 3)
        img = 0.5 + 0.5 * np.sin(2 * np.pi * (x[None, :, None] * fx + x[:, None, None] * fy + phase))
        im = Image.fromarray((img * 255).astype(np.uint8))
        im.save(hr_dir / f"img{i}.png")
        im.resize((SIDE // SCALE,) * 2, Image.BICUBIC).save(lr_dir / f"img{i}.png")
    return hr_dir, lr_dir


def models(seed: int = 0) -> tuple[torch.nn.Module, F16VAE]:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(**TOY_FLUX), F16VAE(TOY_F16_VAE, decode_mode="aligned")


def recipe(name: str, data: tuple[Path, Path], out: Path, steps: int, vgg16: str) -> OP4KSRTrainConfig:
    base = OP4KSRTrainConfig(
        data_dir=str(data[0]),
        lr_dir=str(data[1]),
        crop_size=SIDE,
        scale=SCALE,
        num_workers=0,
        lora_rank=4,
        lora_alpha=4.0,
        lr=3e-3,
        steps=steps,
        mixed_precision="no",
        gradient_checkpointing=False,
        base_dtype="float32",
        export_dtype="float32",
        log_every=max(1, steps // 4),
        checkpoint_every=steps,
        output_dir=str(out),
    )
    if name == "latent":
        return dataclasses.replace(base, perceptual="none", perceptual_weight=0.0, lambda_ap=0.0)
    if name == "default":
        return dataclasses.replace(base, perceptual="lpips" if vgg16 else "standin", vgg16_weights=vgg16)
    raise ValueError(f"unknown recipe {name!r}; choose latent or default")


def curve_points(history: list[dict[str, float]], points: int = 4) -> str:
    """Mean of each term over ``points`` equal windows of the run: 'total 0.88 -> 0.84 -> ...; latent ...'."""
    keys = [k for k in history[0] if k != "total"] + ["total"]
    windows = np.array_split(np.arange(len(history)), points)
    return "; ".join(
        f"{k} " + " -> ".join(f"{np.mean([history[i][k] for i in w]):.4f}" for w in windows) for k in keys
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--recipes", default="latent,default")
    parser.add_argument(
        "--vgg16", default="", help="VGG16 ImageNet weights for real LPIPS (default: stand-in)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp))
        for name in args.recipes.split(","):
            cfg = recipe(name, data, Path(tmp) / name, args.steps, args.vgg16)
            transformer, vae = models()
            wall, cpu = time.perf_counter(), time.process_time()
            result = train(cfg, transformer=transformer, vae=vae)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append(
                [
                    name,
                    str(args.steps),
                    f"{args.steps / wall:.3f}",
                    f"{args.steps / cpu:.3f}",
                    curve_points(result.history),
                ]
            )
            print(rows[-1])
    text = "\n".join(
        [
            f"## OP4KSR trainer smoke runs: benchmarks/op4ksr_train_smoke.py ({dt.date.today()})",
            "",
            f"- Device: {device_name(device)}; torch {torch.__version__}; float32, batch 1, crop {SIDE} px (5x5 tokens, "
            f"placed in the 4096-px canvas), LoRA rank 4, lr 3e-3",
            "- Toy-size FLUX (hidden 32, 1 + 1 blocks) and F16 VAE (16-channel levels), random weights: loop speed and "
            "loss trends only, not SR quality. Steps/s per wall second (shared machine) and per process CPU second.",
            f"- Command: `python benchmarks/op4ksr_train_smoke.py --steps {args.steps} --recipes {args.recipes}`",
            "",
            markdown_table(
                ["recipe", "steps", "steps/s (wall)", "steps/s (CPU time)", "loss by quarter of the run"],
                rows,
            ),
            "",
        ]
    )
    append_results(text, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
