"""GTASR two-stage trainer (docs/gtasr.md §4-§7) on accelerate.

    accelerate launch -m sr4k.training.gtasr --stage 1 --config stage1.toml [--key value ...]
    accelerate launch -m sr4k.training.gtasr --stage 2 --config stage2.toml --init_checkpoint RUN1/gtasr_stage1.pth

Stage I: CT + TA from scratch on the p = 2.5 schedule (4 -> 3 intervals). Stage II: CT + DTM/Stab + Rect from
the stage-I weights, with a frozen copy re-synchronised every ``resync_every`` steps. Checkpoints are
accelerate state folders ``checkpoint-<step>`` (model, AdamW, RNG, EMA and frozen copy, step) holding the
BasicSR ``gtasr_stage<S>.pth`` ({'params', 'params_ema'}) and ``gtasr_stage<S>_ema.safetensors``; the
final weights are also written to ``output_dir``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn

from ...gtasr_core import build
from ..common import EMA, derive_seed, parse_overrides, resume_checkpoint, save_checkpoint
from .config import PRESETS, GTASRTrainConfig, describe, resolve_config
from .data import list_images, make_loader, make_pairs
from .export import export_weights, load_stage1_init
from .init import edm_init_
from .losses import PerceptualLoss
from .perceptual import make_perceptual
from .steps import stage1_losses, stage2_losses

__all__ = ["Run", "TrainResult", "lr_at", "main", "setup_run", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where a run ended: its last step, the logged loss means and the final BasicSR weights file."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    weights: Path | None = None


def lr_at(step: int, config: GTASRTrainConfig) -> float:
    """Learning rate of 1-based ``step``: MultiStepLR stepped once per finished step (BasicSR order), so
    lr = lr0 * gamma^(number of milestones < step). Released: 5e-5, then 2.5e-5 from step 50,001."""
    return config.lr * config.lr_gamma ** bisect.bisect_left(config.lr_milestones, step)


def _split(extra: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}


class _Meter:
    """Running sums of the step losses between two log lines, averaged over steps and processes."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.since = time.perf_counter()

    def add(self, losses: dict[str, Tensor]) -> None:
        for k, v in losses.items():  # tensors, so no device sync per step
            v = v.detach().float().to(self.device_of(losses))
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    @staticmethod
    def device_of(losses: dict[str, Tensor]) -> torch.device:
        return losses["total"].device

    def flush(self, accelerator: Accelerator, step: int, lr: float) -> dict[str, float]:
        keys = sorted(self.sums)
        means = torch.stack([self.sums[k] / self.count for k in keys]).to(accelerator.device)
        means = accelerator.reduce(means, reduction="mean")
        now = time.perf_counter()
        entry = {
            "step": float(step),
            "lr": lr,
            "sec_per_step": (now - self.since) / self.count,
            **dict(zip(keys, means.tolist(), strict=True)),
        }
        if accelerator.device.type == "cuda":
            entry["max_mem_gib"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**30
        self.sums, self.count, self.since = {}, 0, now
        return entry


class Run:
    """The live objects of a run (built by ``setup_run``)."""

    def __init__(
        self,
        acc: Accelerator,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema: EMA,
        frozen: nn.Module | None,
        start: int,
    ) -> None:
        self.acc, self.model, self.optimizer, self.ema, self.frozen, self.start = (
            acc,
            model,
            optimizer,
            ema,
            frozen,
            start,
        )
        self.raw: nn.Module = acc.unwrap_model(model)


def setup_run(config: GTASRTrainConfig, acc: Accelerator) -> Run:
    """Build the student (stage II: from the stage-I weights), AdamW, EMA and D_phi; resume if asked."""
    set_seed(config.seed)  # identical initial weights on every process
    net = edm_init_(build(config.network_config)).train()  # stage II overwrites it below
    init = None
    if config.stage == 2:
        init = load_stage1_init(
            config.init_checkpoint,
            config.network_config,
            config.init_student_key,
            config.init_ema_key,
            config.frozen_init_key,
        )
        net.load_state_dict(init.student)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    model, optimizer = acc.prepare(net, optimizer)
    raw = acc.unwrap_model(model)
    ema = EMA(raw.named_parameters(), config.ema_decay)
    frozen = None
    if init is not None:
        ema.load_state_dict({k: init.ema[k] for k, _ in raw.named_parameters()})
        frozen = build(config.network_config, device=acc.device).requires_grad_(False)
        frozen.load_state_dict(init.frozen)
    torch.manual_seed(derive_seed(config.seed, acc.process_index))  # dropout stream per process
    start, extra = resume_checkpoint(acc, config.output_dir, config.resume)  # also restores RNG states
    if extra:
        ema.load_state_dict(_split(extra, "ema."))
        if frozen is not None:
            frozen.load_state_dict(_split(extra, "frozen."))
    return Run(acc, model, optimizer, ema, frozen, start)


def _save(run: Run, config: GTASRTrainConfig, step: int, final: bool) -> Path | None:
    extra = {f"ema.{k}": v for k, v in run.ema.state_dict().items()}
    if run.frozen is not None:
        extra.update({f"frozen.{k}": v for k, v in run.frozen.state_dict().items()})
    folder = save_checkpoint(run.acc, config.output_dir, step, keep=config.keep_checkpoints, extra=extra)
    if not run.acc.is_main_process:
        return None
    name = f"gtasr_stage{config.stage}"
    export_weights(run.raw, run.ema.shadow, folder / f"{name}.pth", folder / f"{name}_ema.safetensors")
    if not final:
        return None
    out = Path(config.output_dir)
    export_weights(run.raw, run.ema.shadow, out / f"{name}.pth", out / f"{name}_ema.safetensors")
    return out / f"{name}.pth"


def train(
    config: GTASRTrainConfig, perceptual: PerceptualLoss | None = None, accelerator: Accelerator | None = None
) -> TrainResult:
    """Run one stage to ``config.total_steps`` (resuming if ``config.resume``); returns the logged means.

    ``perceptual`` overrides the configured distance (tests inject a stand-in; see perceptual.py).
    """
    acc = accelerator or Accelerator(mixed_precision=config.mixed_precision)
    if acc.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as released (fixed 256 x 256 crops)
    if acc.is_main_process:
        log.info(
            "GTASR stage %d: %s on %s x %d process(es)",
            config.stage,
            describe(config),
            acc.device,
            acc.num_processes,
        )
    # Before setup_run: building LPIPS initialises layers from the global RNG, which setup_run seeds and a
    # resume restores. Built after, a resumed run would draw its dropout from a shifted stream.
    perceptual = perceptual or make_perceptual(config.perceptual, acc.device, config.vgg16_weights or None)
    run = setup_run(config, acc)
    files = list_images(config.data_dirs, config.image_exts)
    batches = iter(
        make_loader(
            files,
            config.gt_size,
            config.batch_size,
            config.seed,
            acc.process_index,
            run.start,
            config.num_workers,
        )
    )
    result, meter = TrainResult(step=run.start), _Meter()
    log_file = Path(config.output_dir) / "log.jsonl"
    if acc.is_main_process:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    for step in range(run.start + 1, config.total_steps + 1):
        gen = torch.Generator(device=acc.device).manual_seed(
            derive_seed(config.seed, acc.process_index, step)
        )
        batch = make_pairs(
            next(batches).to(acc.device, non_blocking=True),
            config.degradation,
            config.network_config.scale,
            gen,
        )
        if run.frozen is not None and config.resync_every and step % config.resync_every == 0:
            run.frozen.load_state_dict(run.raw.state_dict())  # "periodic synchronisation" D_phi <- theta
        lr = lr_at(step, config)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        with acc.autocast():
            if config.stage == 1:
                losses = stage1_losses(run.model, run.raw, batch, config, step, perceptual, gen)
            else:
                losses = stage2_losses(run.model, run.raw, run.frozen, batch, config, step, perceptual, gen)
        acc.backward(losses["total"])
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.ema.update(run.raw.named_parameters())
        meter.add(losses)
        if step % config.log_every == 0 or step == config.total_steps:
            entry = meter.flush(acc, step, lr)
            result.history.append(entry)
            if acc.is_main_process:
                with log_file.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                log.info(
                    "step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k != "step")
                )
        if step % config.save_every == 0 or step == config.total_steps:
            result.weights = _save(run, config, step, final=step == config.total_steps) or result.weights
        result.step = step
    acc.wait_for_everyone()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``--stage {1,2} [--config FILE.toml|json] [--preset NAME] [--<field> VALUE ...]``."""
    parser = argparse.ArgumentParser(
        prog="accelerate launch -m sr4k.training.gtasr",
        description="Train GTASR (stage 1: CT + TA; stage 2: CT + DTM/Stab + Rect).",
    )
    parser.add_argument("--stage", type=int, choices=(1, 2), required=True)
    parser.add_argument("--config", default=None, help="TOML or JSON file of GTASRTrainConfig fields")
    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="defaults to stage1/stage2; 'tiny' is the CPU smoke-test preset",
    )
    args, rest = parser.parse_known_args(argv)
    config = resolve_config(args.stage, args.preset, args.config, parse_overrides(rest))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    result = train(config)
    if result.weights is not None:  # the main process exports
        log.info("finished at step %d; weights: %s", result.step, result.weights)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
