"""GroupNorm that keeps a channels_last (NHWC) map in channels_last.

Why: torch's CUDA GroupNorm (torch 2.11 on the H200 we measure on; pytorch/pytorch#111824) runs on an NCHW copy
of a channels_last input and returns NCHW. In a channels_last network every norm then costs two full-size
layout transposes (NHWC -> NCHW before the norm, NCHW -> NHWC inside the next cuDNN convolution), which is how
channels_last made the GTASR UNet and the F16 VAE slower on the H200 (benchmarks/RESULTS.md, "Perf toggles").
:func:`group_norm_nhwc` computes the same normalisation with reductions and one pointwise pass that all follow
the input's layout, so no transpose happens.

:func:`group_norm` chooses per call: the layout-keeping form for a channels_last map on a device whose own
kernel would convert it (probed once per device type, so a torch that gains NHWC GroupNorm kernels uses them),
the native kernel otherwise, and always the native op under ``torch.compile`` (Inductor writes its own fused
GroupNorm for either layout). ``perf.PerfOptions.nhwc_group_norm``: "auto" (that choice), "on" (every
channels_last map, which is how the CPU tests run it through whole networks) or "off".
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import perf

__all__ = [
    "LayoutGroupNorm",
    "channel_moments",
    "group_norm",
    "group_norm_nhwc",
    "is_channels_last",
    "native_keeps_channels_last",
    "wants_nhwc",
]


def is_channels_last(x: Tensor) -> bool:
    """True for a 4-D tensor stored NHWC and not also plain contiguous (C == 1 or H == W == 1 are both)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@functools.cache
def _native_keeps(device_type: str) -> bool:
    probe = torch.zeros(1, 4, 2, 2, device=device_type).contiguous(memory_format=torch.channels_last)
    return is_channels_last(F.group_norm(probe, 2))


def native_keeps_channels_last(device: torch.device | str) -> bool:
    """Whether ``F.group_norm`` on ``device`` returns a channels_last input in channels_last (probed once per
    device type: True on the CPU, False on CUDA in torch 2.11 and on the meta device)."""
    return _native_keeps(torch.device(device).type)


def wants_nhwc(x: Tensor) -> bool:
    """Whether a GroupNorm of ``x`` should take :func:`group_norm_nhwc` (see the module docstring)."""
    mode = perf.current().nhwc_group_norm
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"perf nhwc_group_norm={mode!r}: use 'auto', 'on' or 'off'")
    if mode == "off" or not is_channels_last(x) or torch.compiler.is_compiling():
        return False
    return mode == "on" or not native_keeps_channels_last(x.device)


# Elements of x per slab of the centring pass: its float32 temporary x - mean is 256 MiB at most.
SLAB_ELEMENTS = 2**26


def channel_moments(x: Tensor, slab_elements: int = SLAB_ELEMENTS) -> tuple[Tensor, Tensor]:
    """Per (n, c) mean and sum of squared deviations M2 = Σ(x - mean)² of x [N, C, H, W] over H×W, float32 [N, C].

    Two passes, as the textbook two-pass variance (Chan, Golub & LeVeque 1983): the channel sums (a reduction
    that reads x in its own dtype and accumulates in float32) give the mean; then Σ(x - mean)² over a float32
    temporary made ``slab_elements`` at a time along H, so no float32 copy of the whole map exists. Unlike
    E[x²] - mean², this keeps float32 precision when |mean| >> std. (Centring in x's own dtype would halve the
    temporary's traffic, but bf16 rounding of x - mean cost 2e-3 relative in M2 in the tests.)
    """
    n, c, h, w = x.shape
    mean = x.sum(dim=(2, 3), dtype=torch.float32) / (h * w)
    rows = max(1, slab_elements // max(1, n * c * w))
    m2 = torch.zeros_like(mean)
    for r in range(0, h, rows):
        d = x[:, :, r : r + rows] - mean[:, :, None, None]  # float32 by type promotion, x's layout
        m2 = m2 + torch.linalg.vector_norm(d, 2, dim=(2, 3)).square()
    return mean, m2


def group_norm_nhwc(
    x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """GroupNorm (Wu & He 2018, eq. 1-3) computed in float32, output in ``x``'s dtype and memory layout.

    x: [N, C, H, W] (any layout; meant for channels_last); weight, bias: [C] or None; C % num_groups == 0.
    Statistics: :func:`channel_moments` per channel, combined per group exactly (mean of the channel means;
    Σ(x - μ_g)² = Σ_c [M2_c + count·(μ_c - μ_g)²]), biased variance as ``F.group_norm``.
    Output: x·a + b with a = weight·rstd and b = bias - mean·a per (n, c) in float32, written in one pointwise
    pass into a tensor laid out like x and rounded once to x's dtype, as the native kernels do.
    """
    n, c, h, w = x.shape
    if c % num_groups:
        raise ValueError(f"group_norm_nhwc: {c} channels do not split into {num_groups} groups")
    per = c // num_groups
    mean_c, m2_c = channel_moments(x)
    mean_c, m2_c = mean_c.view(n, num_groups, per), m2_c.view(n, num_groups, per)
    mean = mean_c.mean(-1, keepdim=True)  # [N, G, 1]
    var = (m2_c.sum(-1, keepdim=True) + h * w * (mean_c - mean).square().sum(-1, keepdim=True)) / (
        per * h * w
    )
    scale = torch.rsqrt(var + eps).expand(n, num_groups, per).reshape(n, c)
    shift = -mean.expand(n, num_groups, per).reshape(n, c) * scale
    if weight is not None:
        scale = scale * weight.float()
        shift = shift * weight.float()
    if bias is not None:
        shift = shift + bias.float()
    scale, shift = scale[:, :, None, None], shift[:, :, None, None]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return torch.addcmul(shift, x, scale).to(x.dtype)  # out= does not record autograd
    # Mixed dtypes: computed in float32 and cast once on the store (CUDA casts inside the kernel).
    return torch.addcmul(shift, x, scale, out=torch.empty_like(x))


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """``F.group_norm``, or :func:`group_norm_nhwc` where that keeps a channels_last map's layout."""
    if wants_nhwc(x):
        return group_norm_nhwc(x, num_groups, weight, bias, eps)
    return F.group_norm(x, num_groups, weight, bias, eps)


class LayoutGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state-dict keys) that keeps channels_last maps in channels_last."""

    def forward(self, x: Tensor) -> Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
