"""OP4KSR LoRA trainer (accelerate): ``python -m sr4k.training.op4ksr --config FILE [--key value ...]``.

Multi-GPU / mixed precision through ``accelerate launch -m sr4k.training.op4ksr --config FILE``. Each optimizer
step takes ``grad_accum`` micro-batches of ``batch_size`` (LR, HR) pairs per process, runs the one-step model
(training/op4ksr/step.py) with a PEFT LoRA on the FLUX transformer and RFR applied, and every ``checkpoint_every`` steps
writes a resumable accelerate checkpoint (LoRA + optimizer + RNG; ``--resume latest``). The LoRA is exported
for ComfyUI's ``LoraLoaderModelOnly`` to ``<output_dir>/op4ksr_lora.safetensors`` (training/op4ksr/lora.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from ...op4ksr_core.flux.forward import set_rfr, token_pixels
from ...op4ksr_core.flux.loader import load_flux_transformer
from ...op4ksr_core.settings import AUTO, auto_decode_mode, files_settings, read_settings, to_metadata
from ...op4ksr_core.vae import F16VAE
from ...op4ksr_core.vae.loader import load_f16_vae
from ...srkit.degradations import PRESETS as DEGRADATION_PRESETS
from ...srkit.weights import load_state_dict
from ..common import (
    EMA,
    add_terms,
    config_to_dict,
    optimizer_step,
    report_and_checkpoint,
    run_trainer_cli,
    start_run,
)
from ..common.setup import data_stream, make_accelerator, prepare_run
from .canvas import CanvasSpec
from .config import OP4KSRTrainConfig, load_train_config
from .data import DegradedCrops, PairedCrops
from .lora import add_lora, save_comfy_lora
from .step import OneStepSR, Perceptual, compute_losses, encode_pair, make_perceptual

if TYPE_CHECKING:  # accelerate is imported lazily (the train extra)
    from accelerate import Accelerator

__all__ = [
    "LORA_FILE",
    "TrainResult",
    "load_transformer",
    "load_vae",
    "main",
    "make_dataset",
    "train",
]


log = logging.getLogger(__name__)

LORA_FILE = "op4ksr_lora.safetensors"


@dataclass
class TrainResult:
    """What a run did: its final step, the per-step loss terms (this process) and the exported LoRA."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    lora_path: Path | None = None


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _path(config: OP4KSRTrainConfig, name: str, what: str) -> str:
    value = getattr(config, name)
    if not value:
        raise ValueError(f"set {name} (the {what} safetensors) in the config or with --{name} PATH")
    return value


def load_transformer(config: OP4KSRTrainConfig) -> torch.nn.Module:
    """The FLUX transformer from ``flux_path`` (BFL/ComfyUI or diffusers keys) in ``base_dtype``."""
    sd = load_state_dict(_path(config, "flux_path", "FLUX transformer"))
    return load_flux_transformer(
        sd, dtype=_dtype(config.base_dtype), axes_dims_rope=config.axes_dims_rope or None
    )


def load_vae(config: OP4KSRTrainConfig) -> F16VAE:
    """The F16 VAE from the FLUX VAE weights at ``vae_path`` in ``base_dtype``.

    ``decode_mode = "auto"``: the VAE file's ``sr4k.op4ksr`` metadata (an sr4k-trained F16 decoder), then the
    transformer file's, else ``aligned`` for BFL keys (raw ``ae.safetensors``) and ``partitioned`` for diffusers.
    """
    path = _path(config, "vae_path", "FLUX VAE")
    sd = load_state_dict(path)
    mode = config.decode_mode
    if mode == AUTO:
        mode = auto_decode_mode(sd, read_settings(path), files_settings(config.flux_path))
        log.info("decode_mode auto = %s for %s", mode, path)
    return load_f16_vae(sd, mode, dtype=_dtype(config.base_dtype))


def make_dataset(config: OP4KSRTrainConfig, unit: int) -> Dataset:
    """Paired crops if ``lr_dir`` is set, else degraded HR crops with the ``degradation`` preset at ``scale``.

    Each sample carries its placement in the ``canvas_long_side`` canvas (``unit``: pixels per token side).
    """
    canvas = CanvasSpec(config.canvas_long_side, unit)
    if config.lr_dir:
        return PairedCrops(config.data_dir, config.lr_dir, config.crop_size, config.scale, canvas)
    preset = DEGRADATION_PRESETS[config.degradation].with_scale(config.scale)
    return DegradedCrops(config.data_dir, config.crop_size, preset, canvas)


def _export(
    accelerator: Accelerator,
    model: OneStepSR,
    ema: EMA | None,
    config: OP4KSRTrainConfig,
    name: str,
    decode_mode: str,
) -> Path:
    transformer = accelerator.unwrap_model(model).transformer
    named = [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]
    backup = {n: p.detach().clone() for n, p in named} if ema else {}
    if ema:
        ema.copy_to(named)
    # The inference settings travel in the file (sr4k.op4ksr): the nodes' and the CLI's "auto" read them.
    settings = to_metadata(config.settings(decode_mode))
    meta = {"sr4k": "op4ksr", "config": json.dumps(config_to_dict(config)), **settings}
    path = save_comfy_lora(transformer, Path(config.output_dir) / name, _dtype(config.export_dtype), meta)
    if ema:
        with torch.no_grad():
            for n, p in named:
                p.copy_(backup[n])
    log.info("exported LoRA %s%s", path, " (EMA weights)" if ema else "")
    return path


def train(
    config: OP4KSRTrainConfig,
    *,
    transformer: torch.nn.Module | None = None,
    vae: F16VAE | None = None,
    dataset: Dataset | None = None,
    perceptual: Perceptual | None = None,
) -> TrainResult:
    """Run (or resume) a LoRA training; models/dataset/perceptual may be passed in (tests, notebooks)."""
    accelerator = make_accelerator(config)
    note = config.unstorable_rfr()
    if note and accelerator.is_main_process:  # said before hours of training, not at the export
        log.warning("OP4KSR: %s", note)
    transformer = transformer if transformer is not None else load_transformer(config)
    vae = vae if vae is not None else load_vae(config)
    vae = vae.to(accelerator.device).eval().requires_grad_(False)
    unit = token_pixels(transformer, vae)
    if config.crop_size % unit or config.canvas_long_side % unit:
        raise ValueError(
            f"crop_size={config.crop_size} and canvas_long_side={config.canvas_long_side} must be multiples of "
            f"the token size {unit} px"
        )
    dataset = dataset if dataset is not None else make_dataset(config, unit)
    if config.lambda_ap > 0 and unit not in config.ap.periods:
        log.warning("L_AP periods %s do not include this model's token size %d px", config.ap.periods, unit)
    params = add_lora(
        transformer,
        config.lora_rank,
        config.lora_alpha,
        config.lora_double_targets,
        config.lora_single_targets,
        config.lora_dropout,
    )
    set_rfr(transformer, config.rfr)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    perceptual = perceptual or make_perceptual(config, accelerator.device)

    module = OneStepSR(transformer, config.one_step())
    model, optimizer, scheduler, step, named, ema = prepare_run(
        accelerator, module, params, config, trained=lambda m: m.transformer
    )
    batches = data_stream(accelerator, dataset, config, step)
    start_run(accelerator, config, "op4ksr")
    say = log.info if accelerator.is_main_process else log.debug  # one line per step, from the main process
    say(
        "OP4KSR LoRA: %d trainable params, %d processes, from step %d to %d",
        sum(p.numel() for p in params),
        accelerator.num_processes,
        step,
        config.steps,
    )

    result = TrainResult(step=step)
    while step < config.steps:
        sums: dict[str, float] = {}
        for _ in range(config.grad_accum):
            lr, hr, *placement = (t.to(accelerator.device) for t in next(batches))
            with accelerator.accumulate(model):
                z_lr, z_hr = encode_pair(vae, lr, hr)
                x0 = model(z_lr, placement[0] if placement else None)
                with accelerator.autocast():
                    terms = compute_losses(x0, z_hr, hr, vae, config, perceptual)
                optimizer_step(accelerator, terms["total"], params, optimizer, config, step)
            add_terms(sums, terms, config.grad_accum)
        scheduler.step()
        step += 1
        if ema:
            ema.update(named)
        result.history.append(sums)
        report_and_checkpoint(accelerator, config, step, sums, scheduler.get_last_lr()[0], say, ema)
        if accelerator.is_main_process and config.export_every and step % config.export_every == 0:
            _export(
                accelerator, model, ema, config, f"op4ksr_lora_step{step:08d}.safetensors", vae.decode_mode
            )
    result.step = step
    if accelerator.is_main_process:
        result.lora_path = _export(accelerator, model, ema, config, LORA_FILE, vae.decode_mode)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer_cli(
        argv,
        prog="python -m sr4k.training.op4ksr",
        description="Train an OP4KSR LoRA. Settings: OP4KSRTrainConfig fields, from --config and --key value "
        "overrides (nested: --rfr.mode ntk, --ap.domain residual).",
        load_config=load_train_config,
        train=train,
        done=lambda result: log.info("done at step %d; LoRA: %s", result.step, result.lora_path),
    )


if __name__ == "__main__":
    raise SystemExit(main())
