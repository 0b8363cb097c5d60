"""Helpers shared by the sr4k trainers: config files + CLI overrides, deterministic seeds, checkpoints, EMA.

Checkpoints are accelerate ``save_state`` folders ``<output_dir>/checkpoint-<step>`` holding only the
*trainable* parameters (the LoRA, not the frozen 12B base), the optimizer, scheduler and RNG states, plus
our ``trainer_state.json`` (the step; written last, so its presence marks a complete checkpoint) and
optional extra tensors (e.g. EMA) as safetensors. Nothing is unpickled beyond accelerate's
``weights_only`` loads: step and EMA do not go through ``register_for_checkpointing`` (which unpickles
with ``weights_only=False``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import sys
import types
import typing
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CHECKPOINT_PREFIX", "EMA", "EXTRA_FILE", "STATE_FILE", "T", "build_dataclass", "checkpoint_dir",
    "config_to_dict", "derive_seed", "list_checkpoints", "load_config_file", "merge_settings",
    "parse_overrides", "prune_checkpoints", "register_trainable_only_state", "resume_checkpoint",
    "save_checkpoint",
]


log = logging.getLogger(__name__)

T = TypeVar("T")

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
EXTRA_FILE = "extra_state.safetensors"

# ----------------------------------------------------------------------------------------------- configs


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; pass --config path/to/config.toml")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
    elif suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError as err:
                raise ValueError("reading TOML on Python 3.10 needs `pip install tomli`; or use a .json config") from err
        data = tomllib.loads(path.read_text())
    else:
        raise ValueError(f"config file {path}: use a .toml or .json file")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table/object of settings, got {type(data).__name__}")
    return data


def _json_or_str(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``["--lr", "1e-4", "--rfr.mode=scale"]`` -> ``{"lr": 1e-4, "rfr": {"mode": "scale"}}``.

    Values are parsed as JSON when they are JSON (numbers, true/false/null, lists), else kept as strings;
    dots address nested sections; ``-`` in names is read as ``_``.
    """
    out: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or arg == "--":
            raise ValueError(f"override {arg!r}: write overrides as --key value or --key=value")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise ValueError(f"override --{key} has no value; write --{key} VALUE")
            raw, i = items[i + 1], i + 1
        value = _json_or_str(raw)
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override --{key}: {part} is both a value and a section")
        node[parts[-1]] = value
        i += 1
    return out


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: sections merge key by key, values in ``overrides`` win."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, name: str) -> Any:
    """``value`` (from TOML/JSON/CLI) as the declared field type ``tp``; ValueError naming ``name`` if impossible."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return build_dataclass(tp, value, prefix=f"{name}.")
        raise ValueError(f"{name}: expected a section of {tp.__name__} settings, got {value!r}")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ValueError(f"{name}={value!r}: choose one of {get_args(tp)}")
    if origin is tuple:
        if isinstance(value, str):  # "64,64" from the command line
            value = [_json_or_str(v.strip()) for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}={value!r}: expected a list")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{name}={value!r}: expected {len(args)} values")
        return tuple(_coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ValueError(f"{name}={value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}={value!r}: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name}={value!r}: expected a number")
    if tp is str:
        if isinstance(value, (str, Path)):
            return str(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a folder named 2024 given on the command line
        raise ValueError(f"{name}={value!r}: expected a string")
    return value


def build_dataclass(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """An instance of the (frozen) dataclass ``cls`` from a mapping, coercing values to the field types.

    Unknown keys are a ValueError listing the valid ones; nested dataclass fields take sub-mappings.
    The dataclass's own ``__post_init__`` then validates the values.
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(prefix + k for k in unknown)}; valid {cls.__name__} keys: "
            f"{', '.join(names)}"
        )
    return cls(**{k: _coerce(hints[k], v, prefix + k) for k, v in data.items()})


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


# ------------------------------------------------------------------------------------------------- seeds


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and indices (step, sample, process...): the same on every machine."""
    digest = hashlib.blake2b(repr((int(seed), *map(int, parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ------------------------------------------------------------------------------------------- checkpoints


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
                raise ValueError(f"checkpoint {input_dir} has no {path.name}; it was not written by this trainer")
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


# --------------------------------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of named parameters, kept in float32: ``s <- decay * s + (1 - decay) * p``."""

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay={decay}: must be in [0, 1), e.g. 0.999")
        self.decay = decay
        self.shadow = {name: p.detach().float().clone() for name, p in named_params}

    @torch.no_grad()
    def update(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        for name, p in named_params:
            self.shadow[name].lerp_(p.detach().float(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        for name, p in named_params:
            p.copy_(self.shadow[name].to(p.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError(
                f"EMA state has {len(state)} tensors, expected {len(self.shadow)} "
                f"(e.g. missing {sorted(set(self.shadow) - set(state))[:3]})"
            )
        for name, value in state.items():
            self.shadow[name].copy_(value.float())
