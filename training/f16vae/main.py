"""F16 decoder trainer (accelerate): ``accelerate launch -m sr4k.training.f16vae --config f16vae.toml``.

Each optimizer step takes ``grad_accum`` micro-batches of ``batch_size`` HR crops per process, reconstructs
them through the frozen encoder and the partly trainable decoder (model.DecoderFinetune) and minimises
L1 + LPIPS. Every ``checkpoint_every`` steps it writes a resumable accelerate checkpoint holding only the
trainable tensors, optimizer, scheduler and RNG states (``--resume latest``); a resumed run reproduces the
uninterrupted one exactly (data and posterior noise are pure functions of the step). The result is
exported to ``<output_dir>/f16_vae.safetensors`` (export.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...op4ksr_core.vae import F16VAE
from ...op4ksr_core.vae.loader import load_f16_vae
from ...srkit.weights import load_state_dict
from ..common import (
    EMA,
    add_terms,
    config_to_dict,
    derive_seed,
    optimizer_step,
    report_and_checkpoint,
    run_trainer_cli,
    start_run,
)
from ..common.setup import data_stream, make_accelerator, prepare_run
from .config import F16VAETrainConfig, load_train_config
from .data import HRCrops
from .export import export_f16_vae
from .model import DecoderFinetune

if TYPE_CHECKING:  # accelerate is imported lazily (the train extra)
    from accelerate import Accelerator

__all__ = [
    "VAE_FILE",
    "TrainResult",
    "compute_losses",
    "load_vae",
    "main",
    "make_perceptual",
    "posterior_noise",
    "train",
]

log = logging.getLogger(__name__)

VAE_FILE = "f16_vae.safetensors"
Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainResult:
    """What a run did: final step, per-step loss terms (this process) and the exported VAE."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    vae_path: Path | None = None


def load_vae(config: F16VAETrainConfig) -> F16VAE:
    """The F16 VAE from the FLUX VAE weights at ``vae_path`` in ``base_dtype``."""
    if not config.vae_path:
        raise ValueError(
            "set vae_path (the FLUX VAE ae.safetensors, or an F16 export) in the config or --vae_path"
        )
    sd = load_state_dict(config.vae_path)
    return load_f16_vae(sd, config.decode_mode, dtype=getattr(torch, config.base_dtype))


def make_perceptual(config: F16VAETrainConfig, device: torch.device) -> Perceptual | None:
    """LPIPS-VGG from local files (training.gtasr.perceptual), the documented stand-in, or None."""
    if not config.uses_perceptual:
        return None
    from ..gtasr.perceptual import make_perceptual as build

    return build(config.perceptual, device, config.vgg16_weights or None)


def compute_losses(
    recon: torch.Tensor, target: torch.Tensor, config: F16VAETrainConfig, perceptual: Perceptual | None
) -> dict[str, torch.Tensor]:
    """Weighted L1 + perceptual terms (unweighted under their names) and ``total``; images in [-1, 1]."""
    recon, target = recon.float(), target.float()
    terms = {"l1": F.l1_loss(recon, target)}
    total = config.l1_weight * terms["l1"]
    if perceptual is not None:
        terms["perceptual"] = perceptual(recon, target).float().mean()
        total = total + config.perceptual_weight * terms["perceptual"]
    terms["total"] = total
    return terms


def posterior_noise(
    config: F16VAETrainConfig, vae: F16VAE, shape: torch.Size, step: int, micro: int, rank: int
) -> torch.Tensor | None:
    """The posterior's standard normal draw for one micro-batch: a pure function of (seed, step, micro, rank)."""
    if not config.sample_posterior:
        return None
    g = torch.Generator().manual_seed(derive_seed(config.seed, step, micro, rank))
    latent = (shape[0], vae.config.latent_channels, shape[2] // vae.downscale, shape[3] // vae.downscale)
    return torch.randn(latent, generator=g)


def _export(
    accelerator: Accelerator, model: DecoderFinetune, ema: EMA | None, config: F16VAETrainConfig, name: str
) -> Path:
    vae = accelerator.unwrap_model(model).vae
    named = [(n, p) for n, p in vae.named_parameters() if p.requires_grad]
    backup = {n: p.detach().clone() for n, p in named} if ema else {}
    if ema:
        ema.copy_to(named)
    path = export_f16_vae(
        vae,
        Path(config.output_dir) / name,
        decode_mode=config.decode_mode,
        dtype=getattr(torch, config.export_dtype),
        settings={"train_scope": config.train_scope},
        config=config_to_dict(config),
    )
    if ema:
        with torch.no_grad():
            for n, p in named:
                p.copy_(backup[n])
    log.info("exported F16 VAE %s%s", path, " (EMA weights)" if ema else "")
    return path


def train(
    config: F16VAETrainConfig,
    *,
    vae: F16VAE | None = None,
    dataset: Dataset | None = None,
    perceptual: Perceptual | None = None,
) -> TrainResult:
    """Run (or resume) a decoder fine-tune; the VAE, dataset and perceptual may be passed in (tests)."""
    accelerator = make_accelerator(config)
    vae = vae if vae is not None else load_vae(config)
    dataset = dataset if dataset is not None else HRCrops(config.data_dir, config.crop_size, config.hflip)
    module = DecoderFinetune(
        vae.to(accelerator.device), config.train_scope, config.decode_mode, config.sample_posterior
    )
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    perceptual = perceptual or make_perceptual(config, accelerator.device)

    model, optimizer, scheduler, step, named, ema = prepare_run(
        accelerator, module, params, config, trained=lambda m: m.vae
    )
    batches = data_stream(accelerator, dataset, config, step)
    start_run(accelerator, config, "f16vae")
    say = log.info if accelerator.is_main_process else log.debug  # one line per step, from the main process
    say(
        "F16 decoder (%s): %d trainable params, %d processes, from step %d to %d",
        config.train_scope,
        sum(p.numel() for p in params),
        accelerator.num_processes,
        step,
        config.steps,
    )

    result = TrainResult(step=step)
    while step < config.steps:
        sums: dict[str, float] = {}
        for micro in range(config.grad_accum):
            hr = next(batches).to(accelerator.device)
            target = hr.float() * 2 - 1
            noise = posterior_noise(config, vae, target.shape, step, micro, accelerator.process_index)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    recon = model(target, noise)  # cast to the frozen encoder's dtype inside
                    terms = compute_losses(recon, target, config, perceptual)
                optimizer_step(accelerator, terms["total"], params, optimizer, config, step)
            add_terms(sums, terms, config.grad_accum)
        scheduler.step()
        step += 1
        if ema:
            ema.update(named)
        result.history.append(sums)
        report_and_checkpoint(accelerator, config, step, sums, scheduler.get_last_lr()[0], say, ema)
        if accelerator.is_main_process and config.export_every and step % config.export_every == 0:
            _export(accelerator, model, ema, config, f"f16_vae_step{step:08d}.safetensors")
    result.step = step
    if accelerator.is_main_process:
        result.vae_path = _export(accelerator, model, ema, config, VAE_FILE)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer_cli(
        argv,
        prog="python -m sr4k.training.f16vae",
        description="Fine-tune the F16 VAE decoder from FLUX VAE weights. Settings: F16VAETrainConfig fields, "
        "from --config and --key value overrides (e.g. --train_scope decoder --lr 1e-5).",
        load_config=load_train_config,
        train=train,
        done=lambda result: log.info("done at step %d; F16 VAE: %s", result.step, result.vae_path),
    )
