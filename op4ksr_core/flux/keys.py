"""FLUX.1 transformer state-dict keys: BFL/ComfyUI layout <-> diffusers ``FluxTransformer2DModel`` layout.

BFL (black-forest-labs/flux, used by ComfyUI ``comfy.ldm.flux.model.Flux``) fuses the attention
projections: ``double_blocks.N.img_attn.qkv`` = cat(to_q, to_k, to_v) and ``single_blocks.N.linear1``
= cat(to_q, to_k, to_v, proj_mlp), all along the output dim. The final adaLN projection emits
(shift, scale) in BFL (``LastLayer``) but (scale, shift) in diffusers (``AdaLayerNormContinuous``),
so its two halves swap. Every other tensor is a rename. QK-norm weights are ``...scale`` in BFL and
``...weight`` in diffusers. Inputs are never mutated; split parts are cloned so the result can be
saved with safetensors (which refuses tensors sharing storage).

Quantised layouts (GGUF, scaled FP8 with extra scale keys) are out of scope: unknown keys raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ...srkit.registry import CheckpointError

__all__ = [
    "BLOCKS",
    "FluxLayout",
    "WRAPPER_PREFIXES",
    "block_count",
    "detect_flux_layout",
    "strip_prefix",
    "bfl_to_diffusers",
    "diffusers_to_bfl",
    "convert_flux_state_dict",
]

FluxLayout = Literal["bfl", "diffusers"]

_LINEAR = (("weight", "weight"), ("bias", "bias"))
_NORM = (("scale", "weight"),)


@dataclass(frozen=True)
class _Rule:
    """BFL module ``bfl`` <-> diffusers modules ``diffusers`` (several: fused along dim 0)."""

    bfl: str
    diffusers: tuple[str, ...]
    params: tuple[tuple[str, str], ...] = _LINEAR
    swap_halves: bool = False


_TOP_RULES = (
    _Rule("img_in", ("x_embedder",)),
    _Rule("txt_in", ("context_embedder",)),
    _Rule("time_in.in_layer", ("time_text_embed.timestep_embedder.linear_1",)),
    _Rule("time_in.out_layer", ("time_text_embed.timestep_embedder.linear_2",)),
    _Rule("vector_in.in_layer", ("time_text_embed.text_embedder.linear_1",)),
    _Rule("vector_in.out_layer", ("time_text_embed.text_embedder.linear_2",)),
    _Rule("guidance_in.in_layer", ("time_text_embed.guidance_embedder.linear_1",)),
    _Rule("guidance_in.out_layer", ("time_text_embed.guidance_embedder.linear_2",)),
    _Rule("final_layer.linear", ("proj_out",)),
    _Rule("final_layer.adaLN_modulation.1", ("norm_out.linear",), swap_halves=True),
)

_D, _T = "double_blocks.{i}.", "transformer_blocks.{i}."
_DOUBLE_RULES = (
    _Rule(_D + "img_mod.lin", (_T + "norm1.linear",)),
    _Rule(_D + "txt_mod.lin", (_T + "norm1_context.linear",)),
    _Rule(_D + "img_attn.qkv", (_T + "attn.to_q", _T + "attn.to_k", _T + "attn.to_v")),
    _Rule(_D + "txt_attn.qkv", (_T + "attn.add_q_proj", _T + "attn.add_k_proj", _T + "attn.add_v_proj")),
    _Rule(_D + "img_attn.proj", (_T + "attn.to_out.0",)),
    _Rule(_D + "txt_attn.proj", (_T + "attn.to_add_out",)),
    _Rule(_D + "img_attn.norm.query_norm", (_T + "attn.norm_q",), _NORM),
    _Rule(_D + "img_attn.norm.key_norm", (_T + "attn.norm_k",), _NORM),
    _Rule(_D + "txt_attn.norm.query_norm", (_T + "attn.norm_added_q",), _NORM),
    _Rule(_D + "txt_attn.norm.key_norm", (_T + "attn.norm_added_k",), _NORM),
    _Rule(_D + "img_mlp.0", (_T + "ff.net.0.proj",)),
    _Rule(_D + "img_mlp.2", (_T + "ff.net.2",)),
    _Rule(_D + "txt_mlp.0", (_T + "ff_context.net.0.proj",)),
    _Rule(_D + "txt_mlp.2", (_T + "ff_context.net.2",)),
)

_S, _U = "single_blocks.{i}.", "single_transformer_blocks.{i}."
_SINGLE_RULES = (
    _Rule(_S + "modulation.lin", (_U + "norm.linear",)),
    _Rule(_S + "linear1", (_U + "attn.to_q", _U + "attn.to_k", _U + "attn.to_v", _U + "proj_mlp")),
    _Rule(_S + "linear2", (_U + "proj_out",)),
    _Rule(_S + "norm.query_norm", (_U + "attn.norm_q",), _NORM),
    _Rule(_S + "norm.key_norm", (_U + "attn.norm_k",), _NORM),
)

# Key prefixes that mark each layout (after any wrapper prefix is stripped).
_MARKERS: dict[str, tuple[str, ...]] = {
    "bfl": ("double_blocks.", "single_blocks.", "img_in.", "final_layer."),
    "diffusers": ("transformer_blocks.", "single_transformer_blocks.", "x_embedder.", "norm_out."),
}
WRAPPER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "model.")
# The double- and single-stream block names of each layout.
BLOCKS: dict[str, tuple[str, str]] = {
    "bfl": ("double_blocks", "single_blocks"),
    "diffusers": ("transformer_blocks", "single_transformer_blocks"),
}


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Keys starting with ``prefix``, with it removed (e.g. ``"model.diffusion_model."`` in checkpoints)."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def detect_flux_layout(state_dict: Mapping[str, Tensor]) -> FluxLayout:
    """``"bfl"`` or ``"diffusers"`` from the key names; CheckpointError (a ValueError) naming the fix otherwise."""
    found = [name for name, marks in _MARKERS.items() if any(k.startswith(marks) for k in state_dict)]
    if len(found) == 1:
        return found[0]  # type: ignore[return-value]
    if not found:
        for prefix in WRAPPER_PREFIXES:
            if any(
                k.startswith(prefix + m) for k in state_dict for marks in _MARKERS.values() for m in marks
            ):
                raise CheckpointError(
                    f"FLUX keys are wrapped in prefix {prefix!r}; call strip_prefix(state_dict, {prefix!r}) first."
                )
        sample = sorted(state_dict)[:5]
        raise CheckpointError(
            f"not a FLUX transformer state dict (no BFL or diffusers keys); first keys: {sample}."
        )
    raise CheckpointError(
        "state dict mixes BFL and diffusers FLUX keys; convert or load each part separately."
    )


def block_count(keys: list[str], block: str) -> int:
    """Number of ``<block>.<i>.`` blocks (max index + 1) among ``keys``, e.g. ``block="double_blocks"``."""
    pattern = re.compile(rf"{re.escape(block)}\.(\d+)\.")
    return max((int(m.group(1)) for k in keys if (m := pattern.match(k))), default=-1) + 1


def _rules(state_dict: Mapping[str, Tensor], layout: FluxLayout) -> list[_Rule]:
    """All rules with block indices filled in for the blocks present in ``state_dict``."""
    keys = list(state_dict)
    double, single = BLOCKS[layout]
    rules = list(_TOP_RULES)
    for template, count in (
        (_DOUBLE_RULES, block_count(keys, double)),
        (_SINGLE_RULES, block_count(keys, single)),
    ):
        for i in range(count):
            rules += [
                _Rule(r.bfl.format(i=i), tuple(d.format(i=i) for d in r.diffusers), r.params, r.swap_halves)
                for r in template
            ]
    return rules


def _swap_halves(t: Tensor) -> Tensor:
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _check_all_used(state_dict: Mapping[str, Tensor], used: set[str], layout: str) -> None:
    left = sorted(set(state_dict) - used)
    if left:
        raise CheckpointError(
            f"{len(left)} {layout} key(s) have no FLUX mapping, e.g. {left[:8]}; strip wrapper prefixes, "
            "dequantise, and drop non-transformer tensors (VAE, text encoders) first."
        )


def bfl_to_diffusers(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert a BFL/ComfyUI FLUX transformer state dict to diffusers ``FluxTransformer2DModel`` keys."""
    if detect_flux_layout(state_dict) != "bfl":
        raise CheckpointError("expected a BFL/ComfyUI FLUX state dict (double_blocks..., img_in...).")
    hidden = state_dict["img_in.weight"].shape[0]
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    for rule in _rules(state_dict, "bfl"):
        for bfl_param, diff_param in rule.params:
            key = f"{rule.bfl}.{bfl_param}"
            if key not in state_dict:
                continue  # optional module (guidance_in, vector_in) or bias-free layer
            used.add(key)
            tensor = state_dict[key]
            if rule.swap_halves:
                tensor = _swap_halves(tensor)
            if len(rule.diffusers) == 1:
                out[f"{rule.diffusers[0]}.{diff_param}"] = tensor
                continue
            # Fused q/k/v (+ MLP input): q, k, v are `hidden` rows each; the MLP takes the rest.
            sizes = [hidden] * 3 + [tensor.shape[0] - 3 * hidden] * (len(rule.diffusers) - 3)
            for name, part in zip(rule.diffusers, torch.split(tensor, sizes, dim=0), strict=True):
                out[f"{name}.{diff_param}"] = part.clone()
    _check_all_used(state_dict, used, "BFL")
    return out


def diffusers_to_bfl(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert a diffusers ``FluxTransformer2DModel`` state dict to BFL/ComfyUI FLUX keys."""
    if detect_flux_layout(state_dict) != "diffusers":
        raise CheckpointError("expected a diffusers FLUX state dict (transformer_blocks..., x_embedder...).")
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    for rule in _rules(state_dict, "diffusers"):
        for bfl_param, diff_param in rule.params:
            keys = [f"{name}.{diff_param}" for name in rule.diffusers]
            present = [k for k in keys if k in state_dict]
            if not present:
                continue
            if len(present) != len(keys):
                missing = sorted(set(keys) - set(present))
                raise CheckpointError(f"cannot fuse {rule.bfl}.{bfl_param}: missing {missing}.")
            used.update(keys)
            parts = [state_dict[k] for k in keys]
            tensor = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
            out[f"{rule.bfl}.{bfl_param}"] = _swap_halves(tensor) if rule.swap_halves else tensor
    _check_all_used(state_dict, used, "diffusers")
    return out


def convert_flux_state_dict(state_dict: Mapping[str, Tensor], to: FluxLayout) -> dict[str, Tensor]:
    """State dict in layout ``to`` (``"bfl"`` or ``"diffusers"``), converting only if needed."""
    if to not in ("bfl", "diffusers"):
        raise ValueError(f"to must be 'bfl' or 'diffusers', got {to!r}.")
    if detect_flux_layout(state_dict) == to:
        return dict(state_dict)
    return bfl_to_diffusers(state_dict) if to == "diffusers" else diffusers_to_bfl(state_dict)
