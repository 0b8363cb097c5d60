"""Trainable-only accelerate checkpoints: save, list, prune, resume.

Checkpoints are accelerate ``save_state`` folders ``<output_dir>/checkpoint-<step>`` holding only the
*trainable* parameters (the LoRA, not the frozen 12B base), the optimizer, scheduler and RNG states, plus
our ``trainer_state.json`` (the step; written last, so its presence marks a complete checkpoint) and
optional extra tensors (e.g. EMA) as safetensors. Nothing is unpickled beyond accelerate's
``weights_only`` loads: step and EMA do not go through ``register_for_checkpointing`` (which unpickles
with ``weights_only=False``).
"""

from __future__ import annotations

import json
import logging
import shutil
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CHECKPOINT_PREFIX",
    "EXTRA_FILE",
    "STATE_FILE",
    "checkpoint_dir",
    "list_checkpoints",
    "prune_checkpoints",
    "register_trainable_only_state",
    "resume_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
EXTRA_FILE = "extra_state.safetensors"


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{step:08d}"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a ``trainer_state.json``) as (step, path), oldest first."""
    root = Path(output_dir)
    found = []
    for path in root.glob(f"{CHECKPOINT_PREFIX}*") if root.is_dir() else ():
        if (path / STATE_FILE).is_file():
            found.append((int(json.loads((path / STATE_FILE).read_text())["step"]), path))
    return sorted(found)


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (``keep <= 0``: keep all); returns the deleted."""
    found = list_checkpoints(output_dir)
    doomed = [path for _, path in found[: max(0, len(found) - keep)]] if keep > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


# Accelerators whose checkpoints hold only trainable tensors: loaded non-strictly, checked by the load hook.
_TRAINABLE_ONLY: weakref.WeakSet = weakref.WeakSet()


def _trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def register_trainable_only_state(accelerator: Any) -> None:
    """Make ``accelerator.save_state`` store only parameters with ``requires_grad`` and check them on load.

    The frozen base (e.g. 12B FLUX weights) comes back from its own file at start-up, so a checkpoint is a few
    MB of LoRA instead of a copy of the base. :func:`resume_checkpoint` then loads non-strictly (the frozen
    tensors are absent) after this hook has checked that the stored names are exactly the trainable ones.
    """

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        for model, state in zip(models, weights, strict=True):
            keep = _trainable_names(model)
            for key in [k for k in state if k not in keep]:
                del state[key]

    def load_hook(models: list, input_dir: str) -> None:
        from safetensors import safe_open

        for i, model in enumerate(models):
            path = Path(input_dir) / (f"model_{i}.safetensors" if i else "model.safetensors")
            if not path.is_file():
                raise ValueError(
                    f"checkpoint {input_dir} has no {path.name}; it was not written by this trainer"
                )
            with safe_open(str(path), "pt") as f:
                stored = set(f.keys())
            wanted = _trainable_names(model)
            if stored != wanted:
                raise ValueError(
                    f"checkpoint {input_dir} holds {len(stored)} trainable tensors, the model has {len(wanted)} "
                    f"(e.g. missing {sorted(wanted - stored)[:3]}, extra {sorted(stored - wanted)[:3]}): resume with "
                    "the LoRA rank and target modules the checkpoint was trained with"
                )

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
    _TRAINABLE_ONLY.add(accelerator)


def save_checkpoint(
    accelerator: Any,
    output_dir: str | Path,
    step: int,
    *,
    keep: int = 0,
    extra: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """``accelerator.save_state`` into ``checkpoint-<step>`` plus step and ``extra`` tensors; keeps ``keep`` newest."""
    path = checkpoint_dir(output_dir, step)
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        if extra:
            save_file({k: v.detach().cpu().contiguous() for k, v in extra.items()}, str(path / EXTRA_FILE))
        (path / STATE_FILE).write_text(json.dumps({"step": int(step)}))
        prune_checkpoints(output_dir, keep)
        log.info("saved checkpoint %s", path)
    accelerator.wait_for_everyone()
    return path


def resume_checkpoint(
    accelerator: Any, output_dir: str | Path, resume: str
) -> tuple[int, dict[str, torch.Tensor]]:
    """Restore a checkpoint; returns (step, extra tensors). ``resume``: '' (start fresh), 'latest' or a path."""
    if not resume:
        return 0, {}
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            log.info("no checkpoint in %s; starting from step 0", output_dir)
            return 0, {}
        path = found[-1][1]
    else:
        path = Path(resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(
                f"resume={resume!r} is not a complete checkpoint folder (no {STATE_FILE}); use 'latest' or a "
                f"{CHECKPOINT_PREFIX}<step> folder of the output dir"
            )
    accelerator.load_state(str(path), strict=accelerator not in _TRAINABLE_ONLY)
    step = int(json.loads((path / STATE_FILE).read_text())["step"])
    extra = load_file(str(path / EXTRA_FILE)) if (path / EXTRA_FILE).is_file() else {}
    log.info("resumed from %s at step %d", path, step)
    return step, extra
