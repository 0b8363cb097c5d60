"""Safe checkpoint loading and saving: ``.safetensors`` and ``.pth/.pt/.ckpt`` (``weights_only=True``).

Every failure names the file and says what to do: a truncated or corrupt download, a pickle holding
Python objects (refused for safety), an unknown extension, or a file that is not a state dict.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

__all__ = [
    "CheckpointError",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "extract_state_dict",
    "load_checkpoint",
    "load_state_dict",
    "save_safetensors",
    "strip_prefix",
]

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SUPPORTED_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


class CheckpointError(ValueError):
    """A checkpoint file cannot be read as weights (corrupt, unsafe pickle or wrong content)."""


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def _corrupt(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{path} ({_size(path)}) is truncated or corrupt: {detail}. Re-download the file "
        "(an interrupted download leaves a partial file) and check its size and hash."
    )


def _load_safetensors(path: Path) -> dict[str, Any]:
    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError) as err:
        raise _corrupt(path, f"safetensors could not read it ({err})") from err


def _unpickler_detail(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return next(
        (ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else type(err).__name__
    )


def _load_pickle(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():
            raise CheckpointError(
                f"{path} is a pickle that holds Python objects besides tensors (e.g. a whole model, an "
                "optimizer or custom classes). For safety only plain state dicts are loaded "
                "(torch.load(weights_only=True)); re-save it with torch.save(model.state_dict(), ...) or "
                f"convert it to .safetensors. Detail: {_unpickler_detail(err)}"
            ) from err
        raise _corrupt(path, f"not a valid PyTorch pickle ({_unpickler_detail(err)})") from err
    except Exception as err:  # garbage bytes can fail anywhere inside the unpickler (IndexError, EOFError...)
        raise _corrupt(
            path, f"torch.load failed with {type(err).__name__}: {_unpickler_detail(err)}"
        ) from err


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint file to CPU as its top-level mapping (may hold nested state dicts).

    Raises FileNotFoundError, CheckpointError (corrupt, unsafe pickle, not a mapping) or ValueError
    (unsupported extension).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    if suffix not in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported checkpoint extension {suffix!r}; expected one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    obj = _load_pickle(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors); save model.state_dict() instead"
        )
    return dict(obj)


def extract_state_dict(
    raw: Mapping[str, Any], key: str | None = None, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The tensor mapping of ``raw`` (or of ``raw[key]``); nested wrappers need an explicit ``key``."""
    if key is not None:
        if key not in raw:
            raise CheckpointError(f"{source} has no entry {key!r}; available: {sorted(map(str, raw))[:20]}")
        raw = raw[key]
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"{source}[{key!r}] is a {type(raw).__name__}, not a state dict")
    nested = sorted(str(k) for k, v in raw.items() if isinstance(v, Mapping))
    if nested:
        raise CheckpointError(f"{source} is a wrapper around {nested}; choose one with key=...")
    bad = [(k, type(v).__name__) for k, v in raw.items() if not isinstance(v, Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({t})" for k, t in bad[:5])
        raise CheckpointError(
            f"{source} is not a plain state dict: {len(bad)} entries are not tensors, e.g. {shown}"
        )
    return {str(k): v for k, v in raw.items()}


def load_state_dict(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Tensor]:
    """``{name: tensor}`` from a ``.safetensors`` or ``.pth/.pt/.ckpt/.bin`` file (CPU, weights_only)."""
    return extract_state_dict(load_checkpoint(path), key, source=str(path))


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Remove ``prefix`` (e.g. DataParallel's ``module.``) from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def save_safetensors(
    state_dict: Mapping[str, Tensor], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a state dict as ``.safetensors`` (contiguous CPU copies; shared storage is unshared)."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ValueError(f"{path}: the output file must end in .safetensors")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=dict(metadata) if metadata else None)
    os.replace(tmp, path)  # never leave a half-written file under the final name
    log.info("wrote %s (%d tensors)", path, len(tensors))
    return path
