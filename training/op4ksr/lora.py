"""LoRA on diffusers' ``FluxTransformer2DModel`` (PEFT) and its export in a key format ComfyUI loads.

Targets are module paths inside a double block (``transformer_blocks.N.<target>``) or a single block
(``single_transformer_blocks.N.<target>``), restricted to those ComfyUI 0.3.75 maps for FLUX, so every
exported key loads: ``comfy/lora.py`` ``model_lora_keys_unet`` maps ``transformer.<diffusers module>`` through
``comfy/utils.py`` ``flux_to_diffusers`` (q/k/v and ``proj_mlp`` land on slices of the fused BFL
``qkv``/``linear1`` weights). The export format, and its headless merge, live in ``op4ksr_core/lora.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import save_file

from ...op4ksr_core.lora import EXPORT_PREFIX  # the export format lives in the core (headless use)

__all__ = [
    "ADAPTER",
    "DEFAULT_DOUBLE_TARGETS",
    "DEFAULT_SINGLE_TARGETS",
    "DOUBLE_BLOCK_TARGETS",
    "SINGLE_BLOCK_TARGETS",
    "add_lora",
    "check_targets",
    "comfy_lora_state_dict",
    "lora_state_dict",
    "save_comfy_lora",
    "target_regex",
]


ADAPTER = "default"

# Block-relative module paths that ComfyUI's flux_to_diffusers maps (comfy/utils.py), so exports always load.
DOUBLE_BLOCK_TARGETS: tuple[str, ...] = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "norm1.linear",
    "norm1_context.linear",
)
SINGLE_BLOCK_TARGETS: tuple[str, ...] = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "proj_mlp",
    "proj_out",
    "norm.linear",
)

# Default: attention q/k/v/out and MLP projections of both block kinds (not the modulation linears).
DEFAULT_DOUBLE_TARGETS: tuple[str, ...] = DOUBLE_BLOCK_TARGETS[:12]
DEFAULT_SINGLE_TARGETS: tuple[str, ...] = SINGLE_BLOCK_TARGETS[:5]


def check_targets(double: Iterable[str], single: Iterable[str]) -> None:
    """ValueError naming any target ComfyUI could not load, or an empty selection."""
    double, single = tuple(double), tuple(single)
    bad = [f"double:{t}" for t in double if t not in DOUBLE_BLOCK_TARGETS]
    bad += [f"single:{t}" for t in single if t not in SINGLE_BLOCK_TARGETS]
    if bad:
        raise ValueError(
            f"LoRA targets {bad} are not FLUX modules ComfyUI maps; double-block targets: {DOUBLE_BLOCK_TARGETS}, "
            f"single-block targets: {SINGLE_BLOCK_TARGETS}"
        )
    if not double and not single:
        raise ValueError("no LoRA targets: set lora_double_targets and/or lora_single_targets")


def target_regex(double: Iterable[str], single: Iterable[str]) -> str:
    """PEFT ``target_modules`` regex (full match on module names) for the chosen block targets."""
    parts = []
    for block, targets in (
        ("transformer_blocks", tuple(double)),
        ("single_transformer_blocks", tuple(single)),
    ):
        if targets:
            parts.append(rf"{block}\.\d+\.(?:{'|'.join(re.escape(t) for t in targets)})")
    return "|".join(f"(?:{p})" for p in parts)


def add_lora(
    transformer: torch.nn.Module,
    rank: int,
    alpha: float,
    double: Iterable[str],
    single: Iterable[str],
    dropout: float = 0.0,
) -> list[torch.nn.Parameter]:
    """Freeze ``transformer``, inject a PEFT LoRA (B = 0: the model is unchanged) and return its float32 params."""
    from peft import LoraConfig

    double, single = tuple(double), tuple(single)
    check_targets(double, single)
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        init_lora_weights=True,
        target_modules=target_regex(double, single),
    )
    transformer.add_adapter(config, adapter_name=ADAPTER)
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the LoRA targets matched no module of this transformer (no blocks?)")
    for p in params:
        p.data = p.data.float()  # PEFT copies the base dtype; the optimizer wants float32 masters
    return params


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.lora_A.weight": ..., "<module>.lora_B.weight": ...}`` of the adapter (no adapter name)."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=ADAPTER)


def comfy_lora_state_dict(
    transformer: torch.nn.Module, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    """The adapter in the ComfyUI-loadable format of the module docstring."""
    config = transformer.peft_config[ADAPTER]
    if getattr(config, "use_rslora", False) or getattr(config, "use_dora", False):
        raise ValueError("export supports plain LoRA (scale alpha / r); rsLoRA and DoRA are not exported")
    if getattr(config, "rank_pattern", None) or getattr(config, "alpha_pattern", None):
        raise ValueError("export needs one rank and alpha for every module (no rank_pattern/alpha_pattern)")
    out: dict[str, torch.Tensor] = {}
    for key, value in lora_state_dict(transformer).items():
        module, _, kind = key.rpartition(".lora_")
        out[EXPORT_PREFIX + key] = value.detach().to("cpu", dtype).contiguous()
        if kind == "A.weight":
            out[f"{EXPORT_PREFIX}{module}.alpha"] = torch.tensor(float(config.lora_alpha))
    return out


def save_comfy_lora(
    transformer: torch.nn.Module,
    path: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write :func:`comfy_lora_state_dict` as safetensors (for ``models/loras``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(comfy_lora_state_dict(transformer, dtype), str(path), metadata=metadata)
    return path
