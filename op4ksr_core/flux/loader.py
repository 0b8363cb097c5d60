"""Build a diffusers ``FluxTransformer2DModel`` from a FLUX.1 transformer file or state dict (either key layout)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch
from torch import Tensor

from ...srkit.registry import CheckpointError, detect
from ...srkit.weights import load_state_dict
from .detect import flux_config
from .keys import convert_flux_state_dict, strip_prefix

__all__ = ["load_flux_transformer"]

log = logging.getLogger(__name__)


def load_flux_transformer(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    axes_dims_rope: tuple[int, int, int] | None = None,
) -> torch.nn.Module:
    """A diffusers ``FluxTransformer2DModel`` (eval mode) holding a FLUX.1 transformer's weights.

    ``path_or_state_dict``: a ``.safetensors``/``.pth`` file or a state dict in BFL/ComfyUI or diffusers keys
    (a wrapper prefix such as ``model.diffusion_model.`` is stripped). The config is read from the shapes
    (``srkit.registry.detect``). dtype: parameter dtype (default float32); device: default CPU.
    Raises CheckpointError (UnknownCheckpointError naming what the file is, when it is not a FLUX transformer).
    """
    from diffusers import FluxTransformer2DModel  # heavy import, only where the headless path runs

    if isinstance(path_or_state_dict, Mapping):
        state_dict, source = path_or_state_dict, "state dict"
    else:
        state_dict, source = load_state_dict(path_or_state_dict), str(path_or_state_dict)
    found = detect(state_dict, source)
    if found.arch != "flux_transformer":
        raise CheckpointError(f"{source} is a {found.arch} checkpoint, not a FLUX transformer")
    sd = strip_prefix(state_dict, found.prefix) if found.prefix else state_dict
    sd = convert_flux_state_dict(sd, "diffusers")
    config = flux_config(sd, "diffusers", axes_dims_rope)
    if config["axes_dims_rope"] is None:
        raise CheckpointError(
            f"attention head dim {config['attention_head_dim']} is not FLUX.1's 128; pass axes_dims_rope explicitly."
        )
    dtype = torch.float32 if dtype is None else dtype
    device = "cpu" if device is None else device
    with torch.device("meta"):
        model = FluxTransformer2DModel(**config)
    missing, unexpected = model.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}, strict=False, assign=True
    )
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit the inferred FLUX config {config}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}."
        )
    log.info("loaded FLUX transformer %s (%s)", config, dtype)
    return model.eval()
