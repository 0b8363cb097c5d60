"""A position-sensitive tiny FLUX for RFR effect tests.

Random-weight FLUX attention is nearly position-blind: softmax over near-zero logits averages every
token, so changing the RoPE barely moves the output. Multiplying the q/k RMSNorm scales by ``gain`` makes
the logits ``gain**2`` larger, attention sharp, and the output depend on the rotary phases, so RFR modes
give differences well above numerical noise. Same architecture and checkpoint format as tiny_models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _cached, tiny_flux_diffusers_model

QK_NORM_SUFFIXES = ("norm_q.weight", "norm_k.weight", "norm_added_q.weight", "norm_added_k.weight")
SHARP_GAIN = 6.0


def sharp_tiny_flux_diffusers(gain: float = SHARP_GAIN, seed: int = 0) -> torch.nn.Module:
    """diffusers tiny FLUX with every q/k RMSNorm scale multiplied by ``gain`` (float32)."""
    model = tiny_flux_diffusers_model(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(QK_NORM_SUFFIXES):
                param.mul_(gain)
    return model


def sharp_tiny_flux_bfl_file(gain: float = SHARP_GAIN, seed: int = 0) -> Path:
    """The same in BFL/ComfyUI layout, bf16 safetensors (what ``UNETLoader`` reads)."""
    from sr4k.op4ksr_core.flux.keys import diffusers_to_bfl

    def build() -> dict[str, torch.Tensor]:
        sd = sharp_tiny_flux_diffusers(gain, seed).state_dict()
        return {k: v.to(torch.bfloat16).contiguous() for k, v in diffusers_to_bfl(sd).items()}

    return _cached(f"tiny_flux_sharp_g{gain:g}_s{seed}_v1.safetensors", build)
