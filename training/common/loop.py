"""The parts of a training step the single-model trainers share (OP4KSR LoRA, F16 decoder).

Each trainer keeps its own forward and losses; these helpers hold what must behave the same in all of them:
the deterministic data stream (resume starts where the run stopped), one micro-batch's optimizer update,
and the end-of-step logging and checkpointing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .checkpoints import save_checkpoint
from .config_files import config_to_dict
from .ema import EMA

if TYPE_CHECKING:  # accelerate is imported lazily (the train extra)
    from accelerate import Accelerator

__all__ = [
    "LoopConfig",
    "add_terms",
    "check_loop_settings",
    "run_trainer_cli",
    "data_loader",
    "optimizer_step",
    "report_and_checkpoint",
    "start_run",
]


class LoopConfig(Protocol):
    """The fields of a trainer config the shared loop reads (both trainers' configs have them)."""

    batch_size: int
    grad_accum: int
    num_workers: int
    output_dir: str
    report_to: str
    steps: int
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int
    grad_clip: float
    warmup_steps: int
    export_every: int
    lr: float
    weight_decay: float
    adam_betas: tuple[float, float]
    ema_decay: float


def check_loop_settings(config: LoopConfig) -> None:
    """Validate the step counts, intervals and optimiser settings every trainer shares (ValueError naming them)."""
    positive = ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every")
    bad = [f"{k}={getattr(config, k)}" for k in positive if getattr(config, k) < 1]
    bad += [
        f"{k}={getattr(config, k)}"
        for k in ("warmup_steps", "export_every", "keep_checkpoints", "num_workers")
        if getattr(config, k) < 0
    ]
    if bad:
        raise ValueError(f"{', '.join(bad)}: counts must be >= 1 (steps, sizes, intervals) or >= 0 (others)")
    if config.lr <= 0 or config.weight_decay < 0 or config.grad_clip < 0:
        raise ValueError(
            f"lr={config.lr}, weight_decay={config.weight_decay}, grad_clip={config.grad_clip}: need lr > 0, "
            "weight_decay >= 0, grad_clip >= 0 (0 disables clipping)"
        )
    if not all(0 <= b < 1 for b in config.adam_betas):
        raise ValueError(f"adam_betas={config.adam_betas}: both in [0, 1), e.g. (0.9, 0.999)")
    if not 0 <= config.ema_decay < 1:
        raise ValueError(f"ema_decay={config.ema_decay}: in [0, 1) (0 = no EMA, e.g. 0.999)")


def data_loader(
    accelerator: Accelerator, dataset: Dataset, config: LoopConfig, sampler: Sampler, seed: int
) -> DataLoader:
    """The run's loader over ``sampler`` (a resumable stream; pinned memory on CUDA).

    The loader has its own generator (``seed``): without one, creating its iterator draws a worker base seed
    from the global RNG. On resume that draw comes after the checkpoint's RNG states are restored, so
    dropout (LoRA dropout) would run one draw out of step with the uninterrupted run.
    """
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )


def start_run(accelerator: Accelerator, config: LoopConfig, project: str) -> None:
    """On the main process: create the output folder, write ``config.json`` and start the trackers."""
    if not accelerator.is_main_process:
        return
    values = config_to_dict(config)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.output_dir) / "config.json").write_text(json.dumps(values, indent=2))
    if config.report_to:
        accelerator.init_trackers(project, config={k: str(v) for k, v in values.items()})


def optimizer_step(
    accelerator: Accelerator,
    total: torch.Tensor,
    params: Sequence[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    config: LoopConfig,
    step: int,
) -> None:
    """Backward of one micro-batch's ``total`` loss and the (accumulation-aware) clipped update.

    Call inside ``accelerator.accumulate(model)``. A non-finite loss stops the run with the step it happened at.
    """
    if not math.isfinite(total.item()):
        raise FloatingPointError(f"loss is {total.item()} at step {step}; lower lr")
    accelerator.backward(total)
    if accelerator.sync_gradients and config.grad_clip > 0:
        accelerator.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def add_terms(sums: dict[str, float], terms: Mapping[str, torch.Tensor], grad_accum: int) -> None:
    """Accumulate one micro-batch's loss terms into the step's means."""
    for k, v in terms.items():
        sums[k] = sums.get(k, 0.0) + v.item() / grad_accum


def report_and_checkpoint(
    accelerator: Accelerator,
    config: LoopConfig,
    step: int,
    sums: Mapping[str, float],
    lr: float,
    say: Callable[..., Any],
    ema: EMA | None,
) -> None:
    """After step ``step``: log the losses (mean over processes) every ``log_every`` steps and save a
    checkpoint (with the EMA) every ``checkpoint_every`` steps; both at the last step."""
    last = step == config.steps
    if step % config.log_every == 0 or last:
        mean = {
            k: accelerator.reduce(torch.tensor(v, device=accelerator.device), "mean").item()
            for k, v in sums.items()
        }
        say(
            "step %d/%d %s lr %.3g", step, config.steps, " ".join(f"{k} {v:.5f}" for k, v in mean.items()), lr
        )
        accelerator.log({f"loss/{k}": v for k, v in mean.items()}, step=step)
    if step % config.checkpoint_every == 0 or last:
        save_checkpoint(
            accelerator,
            config.output_dir,
            step,
            keep=config.keep_checkpoints,
            extra=ema.state_dict() if ema else None,
        )


def run_trainer_cli(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    load_config: Callable[[str | None, list[str]], Any],
    train: Callable[[Any], Any],
    done: Callable[[Any], None],
) -> int:
    """The ``--config FILE [--print-config] [--<field> VALUE ...]`` entry point of a trainer.

    ``load_config(path, overrides)`` builds the frozen config; ``done(result)`` logs where the output went.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="TOML or JSON file of settings")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config, overrides)
    if args.print_config:
        sys.stdout.write(json.dumps(config_to_dict(config), indent=2) + "\n")
        return 0
    done(train(config))
    return 0
