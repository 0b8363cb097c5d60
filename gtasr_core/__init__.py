"""GTASR core (pure PyTorch): the released one-step consistency SR network, its loader and inference.

Public API::

    cfg = RELEASED                                  # GTASRConfig preset (PRESETS["released"])
    net = build_released()                          # GTASRNet, random weights, exact reference keys
    net = load_gtasr("GTASR_final_phase.pth")       # infer config, check keys, load params_ema
    hr = upscale(net, lr, seed=0)                   # lr [B, 3, h, w] in [0, 1] -> [B, 3, 4h, 4w] in [0, 1]
    hr = upscale_to_size(lr, (H, W), run_pass)      # any size: x4 passes, then an antialiased resize
"""

from __future__ import annotations

import torch

from .any_size import MAX_PASSES, passes_for, upscale_to_size
from .checkpoint import convert_to_safetensors, load_gtasr, load_gtasr_state_dict
from .config import PRESETS, RELEASED, GTASRConfig
from .detect import GTASR, GTASRCheckpointError, describe_foreign, infer_config
from .model import GTASRNet, c_noise, c_out, c_skip
from .tiling import DEFAULT_TILE_PLAN, TILE_PLANS, TilePlan, TileRect, plan_tiles, reflect_pad_to_multiple
from .upscale import DEFAULT_OVERLAP, DEFAULT_TILE, check_image, upscale

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "DEFAULT_TILE_PLAN",
    "GTASR",
    "GTASRCheckpointError",
    "GTASRConfig",
    "GTASRNet",
    "MAX_PASSES",
    "PRESETS",
    "RELEASED",
    "TILE_PLANS",
    "TilePlan",
    "TileRect",
    "build",
    "build_released",
    "c_noise",
    "c_out",
    "c_skip",
    "check_image",
    "convert_to_safetensors",
    "describe_foreign",
    "infer_config",
    "load_gtasr",
    "load_gtasr_state_dict",
    "passes_for",
    "plan_tiles",
    "reflect_pad_to_multiple",
    "upscale",
    "upscale_to_size",
]


def build(
    config: GTASRConfig, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> GTASRNet:
    """A GTASR network for ``config`` in eval mode (random weights; load a checkpoint into it)."""
    if not isinstance(config, GTASRConfig):
        raise TypeError(
            f"build() needs a GTASRConfig, got {type(config).__name__}; "
            "use gtasr_core.RELEASED or infer_config(state_dict)"
        )
    net = GTASRNet(config).eval()
    if device is not None or dtype is not None:
        net = net.to(device=device, dtype=dtype)
    return net


def build_released(*, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GTASRNet:
    """The released GTASR architecture (171,518,529 parameters), random weights, eval mode."""
    return build(RELEASED, device=device, dtype=dtype)
