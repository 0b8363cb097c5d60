"""GTASR checkpoints: BasicSR ``{'params', 'params_ema'}`` pickles or flat safetensors -> GTASRNet.

The released files (``GTASR_final_phase.pth``, docs/gtasr.md §2.5) are BasicSR dicts; inference uses
``params_ema``. Loading infers the config from shapes, checks keys, builds on the meta device and
assigns the tensors (no random init, no double memory).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..srkit.weights import extract_state_dict, load_checkpoint, save_safetensors
from .config import GTASRConfig
from .detect import GTASRCheckpointError, infer_config, normalize_keys
from .layers import resample_filter_2d
from .model import GTASRNet
from .swin import relative_position_index

__all__ = [
    "BASICSR_KEYS",
    "check_state_dict",
    "convert_to_safetensors",
    "load_gtasr",
    "load_gtasr_state_dict",
]

log = logging.getLogger(__name__)

BASICSR_KEYS = ("params_ema", "params")  # EMA weights first: the released test config loads params_ema


def _select(raw: Mapping[str, Any], key: str | None, source: str) -> dict[str, Tensor]:
    """Pick the state dict out of a (possibly BasicSR-wrapped) checkpoint mapping."""
    wrapped = [k for k, v in raw.items() if isinstance(v, Mapping)]
    if not wrapped:
        return extract_state_dict(raw, source=source)
    if key is not None and key in raw:
        return extract_state_dict(raw, key, source=source)
    if key == "params_ema" and "params" in raw:
        log.warning("%s has no 'params_ema' (EMA weights); using 'params' instead", source)
        return extract_state_dict(raw, "params", source=source)
    raise GTASRCheckpointError(
        f"{source} has no {key!r} entry; it holds {sorted(map(str, raw))}. "
        f"Pass key= one of {sorted(wrapped)} (BasicSR files have {list(BASICSR_KEYS)})"
    )


def load_gtasr_state_dict(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any], key: str | None = "params_ema"
) -> dict[str, Tensor]:
    """The GTASR state dict (``model.*`` keys) from a file or an in-memory checkpoint mapping.

    BasicSR wrappers: ``key`` picks the entry (default ``params_ema``; falls back to ``params`` with a
    warning when there is no EMA). ``module.`` prefixes are stripped. Raises GTASRCheckpointError when
    the weights are not a GTASR network (naming what they look like).
    """
    if isinstance(path_or_dict, Mapping):
        raw, source = dict(path_or_dict), "checkpoint"
    else:
        raw, source = load_checkpoint(path_or_dict), str(path_or_dict)
    sd = normalize_keys(_select(raw, key, source))
    infer_config(sd, source)  # raises early, with a description, if this is not GTASR
    return sd


def check_state_dict(net: GTASRNet, state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Raise GTASRCheckpointError listing a few missing/unexpected keys and shape mismatches."""
    expected = net.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state_dict and not _is_derived_buffer(k)]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs net {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:4]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:4]}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches, e.g. {shapes[:3]}")
    if problems:
        raise GTASRCheckpointError(
            f"{source} does not fit the inferred GTASR network: " + "; ".join(problems)
        )


def _is_derived_buffer(key: str) -> bool:
    return key.endswith((".relative_position_index", ".resample_filter"))


def _derived_buffers(net: GTASRNet, present: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Recompute buffers a checkpoint may omit (they are functions of the config, not learned)."""
    out = {}
    for name, buf in net.named_buffers():
        if name in present:
            continue
        if name.endswith(".relative_position_index"):
            out[name] = relative_position_index(math.isqrt(buf.shape[0]))
        elif name.endswith(".resample_filter"):
            out[name] = resample_filter_2d(net.config.resample_filter)
    return out


def load_gtasr(
    path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    key: str | None = "params_ema",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> GTASRNet:
    """Load a GTASR checkpoint into a GTASRNet (eval mode) of the inferred config.

    The config is read from the shapes (the registry's ``gtasr`` reader, :func:`infer_config`). dtype: floating
    parameters (default float32); device: default CPU. Raises CheckpointError (GTASRCheckpointError for
    weights that are not a complete GTASR network, naming what they look like).
    """
    dtype = torch.float32 if dtype is None else dtype
    device = "cpu" if device is None else device
    source = "checkpoint" if isinstance(path_or_dict, Mapping) else str(path_or_dict)
    sd = load_gtasr_state_dict(path_or_dict, key)
    config = infer_config(sd, source)
    with torch.device("meta"):
        net = GTASRNet(config)
    check_state_dict(net, sd, source)
    sd = {**sd, **_derived_buffers(net, sd)}
    net.load_state_dict(sd, strict=True, assign=True)
    # Floating tensors go to ``dtype``; the int64 position index stays int64.
    return net.to(device=device, dtype=dtype).eval()


def convert_to_safetensors(
    src: str | os.PathLike[str] | Mapping[str, Any],
    dst: str | os.PathLike[str],
    key: str | None = "params_ema",
    dtype: torch.dtype | None = None,
) -> Path:
    """Write the GTASR weights of ``src`` (e.g. a BasicSR .pth) as a flat ``.safetensors`` file.

    The inferred config is stored in the metadata (``sr4k_gtasr_config``) for reference; loading
    re-infers it from shapes. ``dtype`` optionally casts floating tensors (e.g. torch.float16).
    """
    sd = load_gtasr_state_dict(src, key)
    config: GTASRConfig = infer_config(sd)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    meta = {"format": "pt", "sr4k_arch": "gtasr", "sr4k_gtasr_config": json.dumps(asdict(config))}
    return save_safetensors(sd, dst, metadata=meta)
