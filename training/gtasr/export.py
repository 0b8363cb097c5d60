"""GTASR trainer weights in and out: BasicSR ``{'params', 'params_ema'}`` .pth, EMA safetensors, stage-I init.

The released files (``GTASR_first_phase.pth``, ``GTASR_final_phase.pth``) are BasicSR dicts written with
``torch.save``; ``gtasr_core.load_gtasr`` reads ours the same way (``params_ema`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ...gtasr_core import GTASRConfig, convert_to_safetensors, infer_config, load_gtasr_state_dict
from ...srkit.weights import load_checkpoint

__all__ = ["StageOneInit", "basicsr_dict", "export_weights", "load_stage1_init"]


def _cpu(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix("module."): v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def basicsr_dict(model: nn.Module, ema_params: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """``{'params': online state dict, 'params_ema': same with EMA parameters}`` on CPU, model dtype.

    Buffers (Swin position indices, resample filters) are not averaged: both entries carry the model's.
    """
    params = _cpu(model.state_dict())
    missing = [k for k, _ in model.named_parameters() if k not in ema_params]
    if missing:
        raise ValueError(f"EMA state lacks {len(missing)} parameters, e.g. {missing[:3]}")
    ema = {
        k: (ema_params[k].to(v.dtype) if k in ema_params else v).contiguous().clone()
        for k, v in params.items()
    }
    return {"params": params, "params_ema": _cpu(ema)}


def export_weights(
    model: nn.Module,
    ema_params: Mapping[str, Tensor],
    pth_path: str | os.PathLike[str],
    safetensors_path: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the BasicSR .pth (torch.save) and, optionally, the EMA weights as .safetensors."""
    ckpt = basicsr_dict(model, ema_params)
    pth = Path(pth_path)
    pth.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, pth)
    written = [pth]
    if safetensors_path is not None:
        written.append(convert_to_safetensors(ckpt, safetensors_path, key="params_ema"))
    return written


class StageOneInit(NamedTuple):
    """State dicts that start stage II: the student, its EMA and the frozen copy D_phi."""

    student: dict[str, Tensor]
    ema: dict[str, Tensor]
    frozen: dict[str, Tensor]


def load_stage1_init(
    path: str | os.PathLike[str],
    network: GTASRConfig,
    student_key: str = "params",
    ema_key: str = "params_ema",
    frozen_key: str = "params_ema",
) -> StageOneInit:
    """Read the stage-I checkpoint (BasicSR .pth or a flat file) and check it is ``network``.

    Released stage II: net_g <- params, net_g_ema <- params_ema, D_phi <- params_ema (docs/gtasr.md §6, §7).
    """
    if not str(path):
        raise ValueError(
            "stage 2 starts from the stage-I weights: set init_checkpoint=path/to/"
            "gtasr_stage1.pth (released: GTASR_first_phase.pth)"
        )
    raw = load_checkpoint(path)  # read once; each key below picks its entry
    out = StageOneInit(*(load_gtasr_state_dict(raw, key) for key in (student_key, ema_key, frozen_key)))
    found = infer_config(out.student, str(path))
    if found != network:
        raise ValueError(
            f"{path} holds a different GTASR network than the configured one: file {found}, "
            f"config {network}; set network= to the preset it was trained with"
        )
    return out
