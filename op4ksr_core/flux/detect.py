"""Recognise a FLUX.1 transformer state dict and read its ``FluxTransformer2DModel`` config from key shapes.

Registered with :mod:`srkit.registry` as ``"flux_transformer"`` (layouts ``"bfl"`` and ``"diffusers"``, optionally
under a wrapper prefix such as ``model.diffusion_model.``). The config reader here is the only one (the loader uses it);
it counts blocks with ``keys.block_count``, the converter's counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...srkit.registry import Architecture, CheckpointError, Descriptor, KeyCondition, register
from ..geometry import FLUX_PATCH_SIZE
from .keys import BLOCKS, WRAPPER_PREFIXES, FluxLayout, block_count, detect_flux_layout, strip_prefix

__all__ = ["FLUX_AXES_DIMS_ROPE", "FLUX_TRANSFORMER", "flux_config", "flux_descriptor"]

# FLUX.1's RoPE split of the 128-dim attention head (docs/op4ksr.md Appendix A).
FLUX_AXES_DIMS_ROPE: dict[int, tuple[int, int, int]] = {128: (16, 56, 56)}

# Per layout, the tensors the config is read from: image in, head norm, text in, pooled in, guidance in.
_NAMES: dict[str, tuple[str, ...]] = {
    "bfl": (
        "img_in.weight",
        "double_blocks.0.img_attn.norm.query_norm.scale",
        "txt_in.weight",
        "vector_in.in_layer.weight",
        "guidance_in.in_layer.weight",
    ),
    "diffusers": (
        "x_embedder.weight",
        "transformer_blocks.0.attn.norm_q.weight",
        "context_embedder.weight",
        "time_text_embed.text_embedder.linear_1.weight",
        "time_text_embed.guidance_embedder.linear_1.weight",
    ),
}


def _shape(sd: Mapping[str, Tensor], key: str, layout: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"incomplete {layout}-layout FLUX transformer: {key!r} is missing")
    return tuple(sd[key].shape)


def flux_config(
    sd: Mapping[str, Tensor],
    layout: FluxLayout | None = None,
    axes_dims_rope: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """``FluxTransformer2DModel`` kwargs read off a FLUX state dict's keys and shapes (either layout, no prefix)."""
    layout = layout or detect_flux_layout(sd)
    img_in, head, txt_in, pooled, guidance = _NAMES[layout]
    double, single = BLOCKS[layout]
    hidden, in_channels = _shape(sd, img_in, layout)
    head_dim = _shape(sd, head, layout)[0]
    if axes_dims_rope is None:
        axes_dims_rope = FLUX_AXES_DIMS_ROPE.get(head_dim)  # None: not FLUX.1's head, the loader asks for it
    keys = list(sd)
    return {
        "in_channels": int(in_channels),
        "num_layers": block_count(keys, double),
        "num_single_layers": block_count(keys, single),
        "attention_head_dim": int(head_dim),
        "num_attention_heads": int(hidden // head_dim),
        "joint_attention_dim": int(_shape(sd, txt_in, layout)[1]),
        "pooled_projection_dim": int(_shape(sd, pooled, layout)[1]),
        "guidance_embeds": guidance in sd,
        "axes_dims_rope": None if axes_dims_rope is None else tuple(axes_dims_rope),
    }


def _find_prefix(sd: Mapping[str, Tensor]) -> str:
    for prefix in ("", *WRAPPER_PREFIXES):
        if any(k.startswith(prefix + m) for k in sd for m in ("double_blocks.", "transformer_blocks.")):
            return prefix
    return ""


def flux_descriptor(state_dict: Mapping[str, Tensor]) -> Descriptor:
    """The registry's descriptor of a FLUX transformer state dict (config read after stripping any wrapper)."""
    prefix = _find_prefix(state_dict)
    sd = strip_prefix(state_dict, prefix) if prefix else state_dict
    layout = detect_flux_layout(sd)
    config = flux_config(sd, layout)
    return Descriptor(
        "flux_transformer",
        layout,
        config,
        scale=1,
        size_multiple=FLUX_PATCH_SIZE,
        latent_channels=config["in_channels"] // FLUX_PATCH_SIZE**2,
        prefix=prefix,
    )


FLUX_TRANSFORMER = register(
    Architecture(
        "flux_transformer",
        "a FLUX transformer (BFL/ComfyUI or diffusers layout, e.g. flux1-dev.safetensors)",
        KeyCondition(any_of=("double_blocks.", "single_transformer_blocks.")),
        flux_descriptor,
    )
)
