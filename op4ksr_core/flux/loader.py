"""Build a diffusers ``FluxTransformer2DModel`` from a FLUX state dict in either key layout."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .keys import convert_flux_state_dict

logger = logging.getLogger(__name__)

# FLUX.1's RoPE split of the 128-dim attention head (op4ksr.md Appendix A).
FLUX_AXES_DIMS_ROPE: dict[int, tuple[int, int, int]] = {128: (16, 56, 56)}


def _count(keys: list[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def diffusers_flux_config(
    sd: Mapping[str, Tensor], axes_dims_rope: tuple[int, int, int] | None = None
) -> dict[str, Any]:
    """``FluxTransformer2DModel`` kwargs read off a diffusers-layout state dict's keys and shapes."""
    keys = list(sd)
    if "x_embedder.weight" not in sd or "transformer_blocks.0.attn.norm_q.weight" not in sd:
        raise ValueError("not a diffusers FLUX transformer state dict (no x_embedder / transformer_blocks).")
    hidden, in_channels = sd["x_embedder.weight"].shape
    head_dim = sd["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    if axes_dims_rope is None:
        if head_dim not in FLUX_AXES_DIMS_ROPE:
            raise ValueError(f"attention head dim {head_dim} is not FLUX.1's 128; pass axes_dims_rope explicitly.")
        axes_dims_rope = FLUX_AXES_DIMS_ROPE[head_dim]
    return {
        "in_channels": int(in_channels),
        "num_layers": _count(keys, r"transformer_blocks\.(\d+)\."),
        "num_single_layers": _count(keys, r"single_transformer_blocks\.(\d+)\."),
        "attention_head_dim": int(head_dim),
        "num_attention_heads": int(hidden // head_dim),
        "joint_attention_dim": int(sd["context_embedder.weight"].shape[1]),
        "pooled_projection_dim": int(sd["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
        "guidance_embeds": "time_text_embed.guidance_embedder.linear_1.weight" in sd,
        "axes_dims_rope": tuple(axes_dims_rope),
    }


def load_flux_transformer(
    state_dict: Mapping[str, Tensor],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    axes_dims_rope: tuple[int, int, int] | None = None,
) -> torch.nn.Module:
    """A diffusers ``FluxTransformer2DModel`` holding ``state_dict`` (BFL/ComfyUI or diffusers keys)."""
    from diffusers import FluxTransformer2DModel  # heavy import, only where the headless path runs

    sd = convert_flux_state_dict(state_dict, "diffusers")
    config = diffusers_flux_config(sd, axes_dims_rope)
    with torch.device("meta"):
        model = FluxTransformer2DModel(**config)
    missing, unexpected = model.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}, strict=False, assign=True
    )
    if missing or unexpected:
        raise ValueError(
            f"FLUX state dict does not fit the inferred config {config}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}."
        )
    logger.info("loaded FLUX transformer %s (%s)", config, dtype)
    return model.eval()
