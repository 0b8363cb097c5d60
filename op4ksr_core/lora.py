"""The OP4KSR LoRA file format and its merge into a diffusers FLUX transformer for headless inference.

Keys (diffusers/PEFT style, the format ComfyUI's core ``LoraLoaderModelOnly`` maps onto a FLUX model)::

    transformer.<module>.lora_A.weight  [r, in]     (down)
    transformer.<module>.lora_B.weight  [out, r]    (up)
    transformer.<module>.alpha          scalar      scale alpha / r, exactly PEFT's lora_alpha / r

The trainer (``training/op4ksr/lora.py``) writes it; the CLI and the benchmarks read it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

__all__ = [
    "EXPORT_PREFIX",
    "merge_comfy_lora",
]


EXPORT_PREFIX = "transformer."
_DOWN, _UP = ".lora_A.weight", ".lora_B.weight"


def merge_comfy_lora(
    transformer: torch.nn.Module, lora: Mapping[str, torch.Tensor] | str | Path, strength: float = 1.0
) -> int:
    """Add an exported LoRA into a plain diffusers FLUX's weights: ``W += strength * alpha / r * B @ A``.

    Returns the number of patched modules; ValueError on a key that names no module (wrong base model)
    or a file that is not in this format.
    """
    sd = load_file(str(lora)) if isinstance(lora, (str, Path)) else lora
    modules = dict(transformer.named_modules())
    downs = [k for k in sd if k.endswith(_DOWN)]
    if not downs or not all(k.startswith(EXPORT_PREFIX) for k in sd):
        raise ValueError(
            f"not an sr4k/diffusers FLUX LoRA (keys {sorted(sd)[:3]}); expected transformer.*{_DOWN}"
        )
    with torch.no_grad():
        for key in downs:
            name = key[len(EXPORT_PREFIX) : -len(_DOWN)]
            if name not in modules or not hasattr(modules[name], "weight"):
                raise ValueError(
                    f"LoRA module {name!r} is not in this transformer; is it the LoRA's base model?"
                )
            down, up = sd[key].float(), sd[f"{EXPORT_PREFIX}{name}{_UP}"].float()
            alpha = sd.get(f"{EXPORT_PREFIX}{name}.alpha")
            scale = (float(alpha) / down.shape[0]) if alpha is not None else 1.0
            weight = modules[name].weight
            weight += (strength * scale * (up @ down)).to(weight.dtype)
    return len(downs)
