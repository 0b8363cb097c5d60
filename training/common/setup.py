"""The start of a single-model training run, shared by the OP4KSR LoRA and F16 decoder trainers.

What must be set up the same way in both: the accelerator (mixed precision, accumulation, trackers, seed),
AdamW with a linear warm-up, ``accelerate.prepare`` with trainable-only checkpoints, resuming and the EMA of the
trainable parameters, and the resumable data stream that continues at the resumed step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoints import register_trainable_only_state, resume_checkpoint
from .ema import EMA
from .loop import LoopConfig, data_loader
from .sampler import StreamSampler

if TYPE_CHECKING:  # accelerate is imported lazily (the train extra)
    from accelerate import Accelerator

__all__ = ["PreparedRun", "RunConfig", "data_stream", "make_accelerator", "prepare_run"]


class RunConfig(LoopConfig, Protocol):
    """The loop's fields plus what starting a run reads."""

    mixed_precision: str
    seed: int
    resume: str


def make_accelerator(config: RunConfig) -> Accelerator:
    """The run's ``Accelerator``; the scheduler steps once per optimizer step (not per micro-batch). Seeds all
    generators with ``config.seed``."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
        log_with=config.report_to or None,
        project_dir=config.output_dir,
        step_scheduler_with_optimizer=False,
    )
    set_seed(config.seed)
    return accelerator


class PreparedRun(NamedTuple):
    """The prepared model, optimizer and scheduler; the step to start from; the trainable parameters and their EMA."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int
    named: list[tuple[str, nn.Parameter]]
    ema: EMA | None


def prepare_run(
    accelerator: Accelerator,
    module: nn.Module,
    params: list[nn.Parameter],
    config: RunConfig,
    trained: Callable[[nn.Module], nn.Module],
) -> PreparedRun:
    """AdamW on ``params`` with a linear warm-up over ``warmup_steps``, prepared with ``module``; the run resumed
    as ``config.resume`` says (checkpoints hold the trainable tensors only); the EMA (``ema_decay`` > 0) of the
    trainable parameters of ``trained(unwrapped module)``, with its saved state when resuming."""
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay
    )
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)))
    model, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    register_trainable_only_state(accelerator)
    step, extra = resume_checkpoint(accelerator, config.output_dir, config.resume)
    named = [
        (n, p) for n, p in trained(accelerator.unwrap_model(model)).named_parameters() if p.requires_grad
    ]
    ema = EMA(named, config.ema_decay) if config.ema_decay > 0 else None
    if ema and extra:
        ema.load_state_dict(extra)
    return PreparedRun(model, optimizer, scheduler, step, named, ema)


def data_stream(accelerator: Accelerator, dataset: Dataset, config: RunConfig, step: int) -> Iterator[Any]:
    """This process's batches from optimizer step ``step`` on (what the uninterrupted run would see there)."""
    sampler = StreamSampler(
        len(dataset),
        config.batch_size,
        config.seed,
        start=step * config.grad_accum * config.batch_size,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
    )
    return iter(data_loader(accelerator, dataset, config, sampler, config.seed))
