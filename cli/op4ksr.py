"""``sr4k upscale --model op4ksr``: one-step, patch-free OP4KSR upscale on diffusers' FLUX transformer.

Needs the FLUX transformer (``--flux``, BFL/ComfyUI or diffusers keys; an OP4KSR fine-tune, or the base
plus ``--lora``) and FLUX VAE weights (``--vae``, used as the F16 VAE). FLUX.1-dev is a gated repository,
so nothing is downloaded here: get the files from the model table in the README.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch import Tensor

from ..op4ksr_core.headless import load_pipeline, upscale_image
from ..op4ksr_core.onestep import DEFAULT_T_STAR, DEFAULT_TARGET_LONG_SIDE, INPUT_MODES, OneStepConfig
from ..op4ksr_core.rfr import RFR_PRESETS
from ..op4ksr_core.vae.config import DECODE_MODES
from ..srkit.color import METHODS

__all__ = ["OP4KSRUpscaler", "add_arguments"]

log = logging.getLogger(__name__)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--flux", type=Path, help="FLUX.1 transformer file (OP4KSR fine-tune, or base + --lora)")
    group.add_argument("--vae", type=Path, help="FLUX VAE weights (ae.safetensors or a diffusers F16 VAE)")
    group.add_argument("--lora", type=Path, default=None, help="OP4KSR LoRA (.safetensors) merged into --flux")
    group.add_argument("--lora-strength", type=float, default=1.0, help="LoRA strength (default 1)")
    group.add_argument("--long-side", type=int, default=None,
                       help=f"output long side in pixels (default {DEFAULT_TARGET_LONG_SIDE} unless --scale)")
    group.add_argument("--scale", type=float, default=None, help="output/input size ratio instead of --long-side")
    group.add_argument("--t-star", type=float, default=DEFAULT_T_STAR, help=f"flow time t* (default {DEFAULT_T_STAR})")
    group.add_argument("--input-mode", choices=INPUT_MODES, default="flow", help="how the LR latent enters at t*")
    group.add_argument("--rfr", choices=sorted(RFR_PRESETS), default="ntk", help="RoPE frequency rescaling preset")
    group.add_argument("--decode-mode", choices=DECODE_MODES, default="aligned",
                       help="aligned for the raw FLUX ae.safetensors, partitioned for Diffusion-4K F16 VAEs")
    group.add_argument("--color-correction", choices=METHODS, default="wavelet", help="colour fix (default wavelet)")


class OP4KSRUpscaler:
    """Loads transformer and VAE once; ``__call__`` upscales one ``[1, 3|4, H, W]`` image (alpha dropped)."""

    def __init__(self, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
        for flag, path in (("--flux", args.flux), ("--vae", args.vae)):
            if path is None:
                raise ValueError(f"--model op4ksr needs {flag} FILE (see the model table in the README)")
        if args.long_side is not None and args.scale is not None:
            raise ValueError("give --long-side or --scale, not both")
        self.transformer, self.vae = load_pipeline(
            args.flux, args.vae, decode_mode=args.decode_mode, rfr=RFR_PRESETS[args.rfr], lora=args.lora,
            lora_strength=args.lora_strength, dtype=dtype, device=device,
        )
        self.config = OneStepConfig(t_star=args.t_star, input_mode=args.input_mode)
        self.args = args
        log.info("OP4KSR: %s + %s on %s (%s), RFR %s", args.flux, args.vae, device, dtype, args.rfr)

    def __call__(self, image: Tensor) -> Tensor:
        a = self.args
        long_side = a.long_side if a.long_side is not None or a.scale is not None else DEFAULT_TARGET_LONG_SIDE
        return upscale_image(self.transformer, self.vae, image[:, :3], long_side=long_side, scale=a.scale,
                             config=self.config, color=a.color_correction)
