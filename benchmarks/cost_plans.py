"""What benchmarks/cost.py measures: the full-size plan (FLUX.1-dev, the released GTASR) and the CPU smoke plan.

``SMOKE`` and ``SMOKE_GTASR`` are also the reduced models of the other benchmark scripts' smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from flops import FLUX_DEV

from sr4k.gtasr_core import RELEASED, GTASRConfig
from sr4k.gtasr_core.config import TINY

__all__ = ["DTYPES", "FULL", "SLOW_TOKENS", "SMOKE", "SMOKE_GTASR", "Plan"]


@dataclass(frozen=True)
class Plan:
    """What to measure. ``transformer``: (label, image px, VAE downscale); ``e2e``: (LR px, output px)."""

    name: str
    flux: dict[str, Any]
    text_tokens: int
    transformer: tuple[tuple[str, int, int], ...]
    vae_px: tuple[int, ...]
    e2e: tuple[tuple[int, int], ...]
    gtasr_lr: int
    gtasr_tile: int
    repeats: int
    slow_repeats: int
    matmul_n: int
    dtype: str
    warmup: int = 1
    gtasr: GTASRConfig = RELEASED
    notes: list[str] = field(default_factory=list)


FULL = Plan(
    "full",
    FLUX_DEV,
    512,
    (
        ("F16 2048²", 2048, 16),
        ("F16 4096² (OP4KSR)", 4096, 16),
        ("F8 4096² (patch-free alternative)", 4096, 8),
    ),
    (2048, 4096),
    ((512, 2048), (1024, 4096)),
    1024,
    512,
    3,
    1,
    8192,
    "bfloat16",
)
# CPU smoke plan: every code path at toy cost (CI); the VAE is real-size, the rest shrunk.
SMOKE_GTASR = TINY  # the architecture at toy size (two levels, one block)
SMOKE = Plan(
    "smoke",
    {**FLUX_DEV, "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 4},
    32,
    (("F16 256²", 256, 16), ("F8 256²", 256, 8)),
    (128,),
    ((32, 128),),
    32,
    24,
    1,
    1,
    1024,
    "float32",
    warmup=0,
    gtasr=SMOKE_GTASR,
    notes=[
        "reduced size: transformer depth 1+1 with 4 heads (hidden 512), 32 text tokens; real-size F16 "
        "VAE at 128²; end to end 32² -> 128²; GTASR 2-level config (32 channels), LR 32, 24 px tiles"
    ],
)
SLOW_TOKENS = 16_384  # more image tokens than OP4KSR's 4096^2 F16 case
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
