"""Write a fine-tuned F16 VAE as a diffusers-layout safetensors that carries its decode mode.

The file holds all 244 tensors of the FLUX VAE in diffusers key layout (``encoder.down_blocks...``,
``decoder.up_blocks...``), the layout of Diffusion-4K's SC-VAE and UltraFlux's VAE, so
``OP4KSR_LoadF16VAE``, ``sr4k upscale --vae`` and ``op4ksr_core.vae.load_f16_vae`` read it
unchanged. Metadata:

- ``sr4k.op4ksr``: JSON ``{"decode_mode": ..., ...}``, the settings the weights were trained with. Same key
  and JSON-object format as ``op4ksr_core/settings.py`` (METADATA_KEY = "sr4k.op4ksr", written for the
  OP4KSR LoRA export), so loaders with ``decode_mode = auto`` pick the right mode.
- ``sr4k``: ``"f16vae"``; ``config``: the trainer config as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ...op4ksr_core.settings import METADATA_KEY, read_metadata
from ...op4ksr_core.vae import F16VAE
from ...op4ksr_core.vae.loader import check_vae_state_dict

__all__ = ["METADATA_KEY", "export_f16_vae", "read_settings", "vae_settings"]


def vae_settings(decode_mode: str, **extra: Any) -> dict[str, Any]:
    """The ``sr4k.op4ksr`` object of an F16 VAE export: its decode mode, layout and anything in ``extra``."""
    return {"decode_mode": decode_mode, "vae_layout": "diffusers", "vae": "f16", **extra}


def export_f16_vae(
    vae: F16VAE,
    path: str | Path,
    *,
    decode_mode: str,
    dtype: torch.dtype = torch.float32,
    settings: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``vae`` (encoder + decoder, diffusers layout) in ``dtype`` with the metadata above; returns the path."""
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in vae.state_dict().items()}
    check_vae_state_dict(sd, vae.config)  # the file must load where every F16 VAE loads
    # One JSON object under METADATA_KEY, as the LoRA export writes; settings.from_metadata ignores the extra
    # fields (layout, scope) and reads decode_mode, which the loaders' decode_mode=auto then use.
    meta = {
        METADATA_KEY: json.dumps(vae_settings(decode_mode, **dict(settings or {}))),
        "sr4k": "f16vae",
    }
    if config is not None:
        meta["config"] = json.dumps(dict(config))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    save_file(sd, str(tmp), metadata=meta)
    tmp.replace(path)  # never leave a half-written file under the final name
    return path


def read_settings(path: str | Path) -> dict[str, Any]:
    """The ``sr4k.op4ksr`` object of a safetensors file ({} if it has none)."""
    raw = read_metadata(path).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
