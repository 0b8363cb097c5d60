"""The low-VRAM setting of the headless OP4KSR pipeline: fp8 token linears + constant AdaLN modulation.

Measured on an H200 at 1024² -> 4096² (benchmarks/RESULTS.md, 2026-11-30, commit 88e176a): peak 16.5 GiB instead of
30.6 GiB (weights 22.2 -> 8.3 GiB), transformer 0.87 s instead of 0.82 s, output within 4.2 % (relative L2) of the
bf16 pipeline's; with the channels_last VAE (the default now) 13.5 GiB and 1.30 s end to end. Compiled (CLI
``--low-vram --compile``, ``mode="rowwise"``): 0.957 s, 17.2 GiB.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .const_modulation import FrozenModulation, freeze_modulation
from .fp8_linear import Mode, fp8_linears

__all__ = ["to_low_vram"]


def to_low_vram(
    transformer: nn.Module,
    device: torch.device | str,
    capture: Callable[[], object],
    mode: Mode = "weight_only",
) -> FrozenModulation:
    """Quantise the token linears of ``transformer`` to e4m3 where it lies (load it on the CPU so the bf16
    weights never reach the GPU), move it to ``device``, then run ``capture()`` (one small upscale at the
    t*, guidance and pooled vector of the later calls) to freeze the modulation, whose weights go to the CPU.

    ``mode``: "weight_only" (bf16 GEMMs on dequantised weights; on the H200 faster than "rowwise" fp8 GEMMs in eager
    mode, whose activation quantisation costs more than the fp8 GEMMs save: 0.87 vs 1.00 s) or "rowwise" (faster
    once compiled, where Inductor fuses the quantisation: transformer 0.585 vs 0.695 s).
    """
    fp8_linears(transformer, mode)
    transformer.to(device)
    return freeze_modulation(transformer, capture, offload=True)
