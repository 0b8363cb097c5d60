"""The parts of a training step the single-model trainers share (OP4KSR LoRA, F16 decoder).

Each trainer keeps its own forward and losses; these helpers hold what must behave the same in all of them:
the deterministic data stream (resume starts where the run stopped), one micro-batch's optimizer update,
and the end-of-step logging and checkpointing.
"""

from __future__ import annotations

import json
import math
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

__all__ = ["LoopConfig", "add_terms", "data_loader", "optimizer_step", "report_and_checkpoint", "start_run"]


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


def data_loader(
    accelerator: Accelerator, dataset: Dataset, config: LoopConfig, sampler: Sampler
) -> DataLoader:
    """The run's loader over ``sampler`` (a resumable stream; pinned memory on CUDA)."""
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=accelerator.device.type == "cuda",
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
