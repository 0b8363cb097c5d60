"""fp8 (e4m3) linears for the FLUX transformer's token-wise layers: half the weight memory, and on Hopper
(``torch._scaled_mm`` with row-wise scales) faster GEMMs.

Weights: e4m3 with one float32 scale per output row (w ≈ w8 · s_w). ``mode="rowwise"`` also quantises each
activation row (x ≈ x8 · s_x) and multiplies in fp8 with fp32 accumulation; ``mode="weight_only"``
dequantises the weights to the activation dtype and runs a bf16 GEMM (the same numbers on any device).
Not exact: e4m3 keeps 3 mantissa bits, so each product carries ~2⁻⁴ relative rounding that averages out
over the reduction; the measured output error against bf16 is in benchmarks/RESULTS.md.

Under ``torch.compile`` (``flux.compile.compile_blocks`` after :func:`fp8_linears`) the forward traces into
the block graphs with ``fullgraph=True``, so Inductor fuses the activation quantisation (row max, scale, cast)
into the producers instead of the three extra eager passes that made eager row-wise slower than bf16 on the
H200 (0.81 -> 0.98 s). Compiled, row-wise is the faster mode: transformer 0.585 s against 0.695 s with weight-only
and 0.686 s in bf16 (H200, benchmarks/RESULTS.md, 2026-11-30).
"""

from __future__ import annotations

import re
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "E4M3_MAX",
    "FP8_CAPABILITY",
    "FP8Linear",
    "Mode",
    "fp8_linears",
    "quantize_rows",
    "scaled_mm_supported",
    "use_scaled_mm",
]

E4M3_MAX = 448.0
Mode = Literal["rowwise", "weight_only"]
# Token-wise linears of the double and single blocks (attention projections, MLPs); not the AdaLN
# modulation (see const_modulation), not the embedders.
_TOKEN_LINEAR = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.\d+\.(?!norm)")


def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [N, K] -> (e4m3 [N, K], float32 scales [N, 1]) with w ≈ q · s, each row scaled to ±448."""
    scale = w.detach().abs().amax(dim=1, keepdim=True).float().clamp_min(1e-12) / E4M3_MAX
    return (w.float() / scale).to(torch.float8_e4m3fn), scale


# fp8 tensor cores, which torch._scaled_mm's row-wise kernel needs: Ada (sm 8.9), Hopper and later.
FP8_CAPABILITY = (8, 9)


def scaled_mm_supported(capability: tuple[int, int] | None, dtype: torch.dtype) -> bool:
    """Whether row-wise ``torch._scaled_mm`` runs for activations of ``dtype`` on a CUDA device of compute
    ``capability`` (None: not CUDA): fp8 tensor cores, and bf16 activations (the kernel's only row-wise output
    type). Elsewhere (A100, RTX 30xx, fp16 or fp32 activations) the row-wise mode runs the dequantised GEMM."""
    return capability is not None and capability >= FP8_CAPABILITY and dtype == torch.bfloat16


def use_scaled_mm(x: torch.Tensor) -> bool:
    """Whether the row-wise mode multiplies ``x`` with ``torch._scaled_mm``: on CUDA GPUs that can
    (:func:`scaled_mm_supported`; recent CPU builds have the kernel too, but it is slower there than the
    dequantised GEMM). A module-level function so that the CPU tests can trace the ``_scaled_mm`` path under
    ``torch.compile``."""
    return x.is_cuda and scaled_mm_supported(torch.cuda.get_device_capability(x.device), x.dtype)


class FP8Linear(nn.Module):
    """``nn.Linear`` with e4m3 weights and per-row scales (see module docstring for the modes)."""

    def __init__(self, linear: nn.Linear, mode: Mode = "rowwise") -> None:
        super().__init__()
        if mode not in ("rowwise", "weight_only"):
            raise ValueError(f"mode={mode!r}: choose 'rowwise' or 'weight_only'")
        self.mode, self.in_features, self.out_features = mode, linear.in_features, linear.out_features
        q, s = quantize_rows(linear.weight.data)
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", s)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.data.clone())

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        return self.weight_fp8.to(dtype) * self.weight_scale.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        rows = x.reshape(-1, x.shape[-1])
        if self.mode == "weight_only" or not use_scaled_mm(x) or rows.shape[0] < 16:
            return F.linear(x, self.dequantized_weight(x.dtype), bias)
        x_scale = rows.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-12) / E4M3_MAX
        xq = (rows.float() / x_scale).to(torch.float8_e4m3fn)
        y = torch._scaled_mm(
            xq, self.weight_fp8.t(), scale_a=x_scale, scale_b=self.weight_scale.t(), out_dtype=x.dtype
        )
        if bias is not None:
            y = y + bias
        return y.reshape(*x.shape[:-1], self.out_features)


def fp8_linears(transformer: nn.Module, mode: Mode = "rowwise") -> int:
    """Replace the token-wise ``nn.Linear`` layers of a diffusers FLUX transformer by :class:`FP8Linear`
    (in place); returns how many. The bf16 weights are freed as each layer is replaced."""
    names = [n for n, m in transformer.named_modules() if isinstance(m, nn.Linear) and _TOKEN_LINEAR.match(n)]
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = transformer.get_submodule(parent)
        setattr(owner, child, FP8Linear(getattr(owner, child), mode))
    return len(names)
