"""Toy-size OP4KSR models of the real families, for CPU smoke runs of the trainer (benchmarks, tests).

No trained weights exist at these sizes; they exercise every code path of a training step in seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...op4ksr_core.vae.config import FLUX_F16, VaeConfig

__all__ = ["TOY_F16_VAE", "TOY_FLUX"]

# diffusers FluxTransformer2DModel kwargs: hidden 32 (two heads of 16), one block of each kind.
TOY_FLUX: dict[str, Any] = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=16,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),
)
# The F16 geometry (4 levels, stride-2 input: 16 px per latent, 32 px per token) with 16 channels.
TOY_F16_VAE: VaeConfig = dataclasses.replace(
    FLUX_F16, block_out_channels=(16, 16, 16, 16), layers_per_block=1, norm_num_groups=8
)
