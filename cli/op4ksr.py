"""``sr4k upscale --model op4ksr``: one-step, patch-free OP4KSR upscale on diffusers' FLUX transformer.

Needs the FLUX transformer (``--flux``, BFL/ComfyUI or diffusers keys; an OP4KSR fine-tune, or the base
plus ``--lora``) and FLUX VAE weights (``--vae``, used as the F16 VAE). FLUX.1-dev is a gated repository,
so nothing is downloaded here: get the files from the model table in the README.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from torch import Tensor

from ..op4ksr_core.flux.compile import compile_blocks
from ..op4ksr_core.flux.low_vram import to_low_vram
from ..op4ksr_core.headless import load_pipeline, upscale_image
from ..op4ksr_core.onestep import (
    DEFAULT_GUIDANCE,
    DEFAULT_INPUT_MODE,
    DEFAULT_T_STAR,
    DEFAULT_TARGET_LONG_SIDE,
    INPUT_MODES,
    OneStepConfig,
)
from ..op4ksr_core.rfr import RFR_PRESETS
from ..op4ksr_core.settings import AUTO, files_settings, from_widgets, resolve, rfr_config
from ..op4ksr_core.vae.compile import compile_vae
from ..op4ksr_core.vae.config import DECODE_MODES
from ..srkit import perf
from ..srkit.color import METHODS
from ..srkit.sizing import resize_exact
from .targets import check_target

__all__ = ["OP4KSRUpscaler", "add_arguments", "check_args"]

log = logging.getLogger(__name__)


def _guidance(text: str) -> str | float:
    """``--guidance``: ``auto`` or a finite number >= 0."""
    if text == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: a number >= 0 (FLUX-dev's usual value is 3.5) or auto")
    return value


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--flux", type=Path, help="FLUX.1 transformer file (OP4KSR fine-tune, or base + --lora)"
    )
    group.add_argument("--vae", type=Path, help="FLUX VAE weights (ae.safetensors or a diffusers F16 VAE)")
    group.add_argument(
        "--lora", type=Path, default=None, help="OP4KSR LoRA (.safetensors) merged into --flux"
    )
    group.add_argument("--lora-strength", type=float, default=1.0, help="LoRA strength (default 1)")
    group.add_argument(
        "--t-star",
        type=float,
        default=0.0,
        help=f"flow time t*; 0 = auto: the weights' sr4k.op4ksr metadata, else {DEFAULT_T_STAR}",
    )
    group.add_argument(
        "--input-mode",
        choices=[AUTO, *INPUT_MODES],
        default=AUTO,
        help=f"how the LR latent enters at t*; auto: the weights' metadata, else {DEFAULT_INPUT_MODE}",
    )
    group.add_argument(
        "--guidance",
        type=_guidance,
        default=AUTO,
        help="FLUX-dev guidance embedding (a number >= 0); auto: the weights' metadata (what they were trained "
        f"with), else {DEFAULT_GUIDANCE:g}",
    )
    group.add_argument(
        "--rfr",
        choices=[AUTO, *sorted(RFR_PRESETS)],
        default=AUTO,
        help="RoPE frequency rescaling preset; auto: the weights' metadata, else ntk",
    )
    group.add_argument(
        "--decode-mode",
        choices=[AUTO, *DECODE_MODES],
        default=AUTO,
        help="auto: the VAE's (or weights') metadata, else aligned for the raw FLUX ae.safetensors "
        "(BFL keys) and partitioned for a diffusers-format F16 VAE",
    )
    group.add_argument(
        "--color-correction", choices=METHODS, default="wavelet", help="colour fix (default wavelet)"
    )
    group.add_argument(
        "--low-vram",
        action="store_true",
        help="fp8 token linears + constant AdaLN modulation: 13.5 instead of 30.6 GiB at 4K (H200, 1.30 s), "
        "output within ~4 %% of bf16",
    )


def check_args(args: argparse.Namespace) -> None:
    """Refuse missing files and bad sizes before the FLUX transformer (tens of GiB) is loaded."""
    for flag, path in (("--flux", args.flux), ("--vae", args.vae)):
        if path is None:
            raise ValueError(f"--model op4ksr needs {flag} FILE (see the model table in the README)")
    check_target(args)
    for flag, path in (("--flux", args.flux), ("--vae", args.vae), ("--lora", args.lora)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} file {path} does not exist")


class OP4KSRUpscaler:
    """Loads transformer and VAE once; ``__call__`` upscales one ``[1, 3|4, H, W]`` image (alpha resized)."""

    def __init__(self, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
        check_args(args)
        weights = files_settings(args.lora, args.flux)
        if weights is None:
            log.warning(
                "OP4KSR: %s%s carries no sr4k.op4ksr settings, so it is most likely plain FLUX.1 and the "
                "result will be soft. Pass OP4KSR weights (--lora, or a fine-tune as --flux); how to make "
                "them: docs/training_op4ksr.md.",
                args.flux,
                f" + {args.lora}" if args.lora else "",
            )
        chosen = resolve(
            from_widgets(t_star=args.t_star, input_mode=args.input_mode, guidance=args.guidance), weights
        )
        rfr = rfr_config(weights) if args.rfr == AUTO else RFR_PRESETS[args.rfr]
        low_vram = getattr(args, "low_vram", False)
        self.transformer, self.vae = load_pipeline(
            args.flux,
            args.vae,
            decode_mode=args.decode_mode,
            rfr=rfr,
            lora=args.lora,
            lora_strength=args.lora_strength,
            dtype=dtype,
            device="cpu" if low_vram else device,
        )
        self.config = OneStepConfig(
            t_star=chosen.t_star, input_mode=chosen.input_mode, guidance=chosen.guidance
        )
        if low_vram:  # quantised on the CPU, so the bf16 transformer never has to fit on the GPU
            self.vae.to(device)
            probe = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
            to_low_vram(
                self.transformer,
                device,
                lambda: upscale_image(self.transformer, self.vae, probe, long_side=256, config=self.config),
                # Compiled, Inductor fuses the activation quantisation and the fp8 GEMMs win: 4K in 0.957 s vs
                # 1.067 s with weight-only (H200, benchmarks/RESULTS.md, 2026-11-30); eager, weight-only is faster.
                mode="rowwise" if getattr(args, "compile", False) else "weight_only",
            )
        # None: the options in force when an image runs
        self.perf_options: perf.PerfOptions | None = None
        if getattr(args, "compile", False):
            # FLUX blocks and the VAE's resnets, run in the layout measured fastest compiled (perf.COMPILED):
            # 1024² -> 4096² 1.463 -> 1.098 s on an H200 (benchmarks/RESULTS.md, 2026-11-30)
            self.perf_options = perf.COMPILED
            compile_blocks(self.transformer)
            compile_vae(self.vae)
        self.first_call = True
        self.args = args
        log.info(
            "OP4KSR: %s + %s on %s (%s), t* %g, input %s, guidance %g, RFR %s, decode %s",
            args.flux,
            args.vae,
            device,
            dtype,
            chosen.t_star,
            chosen.input_mode,
            chosen.guidance,
            rfr.mode,
            self.vae.decode_mode,
        )

    def __call__(self, image: Tensor) -> Tensor:
        a = self.args
        long_side = (
            a.long_side if a.long_side is not None or a.scale is not None else DEFAULT_TARGET_LONG_SIDE
        )
        start = time.perf_counter()
        with perf.options(self.perf_options):
            out = upscale_image(
                self.transformer,
                self.vae,
                image[:, :3],
                long_side=long_side,
                scale=a.scale,
                config=self.config,
                color=a.color_correction,
            )
        if self.first_call and getattr(a, "compile", False):
            log.info(
                "OP4KSR: first image with torch.compile (compilation included): %.1f s",
                time.perf_counter() - start,
            )
        self.first_call = False
        if image.shape[1] == 4:
            out = torch.cat(
                [out, resize_exact(image[:, 3:].float().to(out.device), tuple(out.shape[-2:]))], dim=1
            )
        return out
