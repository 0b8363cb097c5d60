"""EDM layers of the GTASR UNet: the resampling conv and the fp32 GroupNorm (the Swin layer is in swin.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..srkit import perf
from ..srkit.group_norm import group_norm_nhwc, wants_nhwc
from ..srkit.upsample_conv import upsample2x_conv

__all__ = ["FP32GroupNorm", "ResampleConv2d", "resample_filter_2d"]


class FP32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (statistics over large maps are precision-sensitive)."""

    def forward(self, x: Tensor) -> Tensor:
        if wants_nhwc(x):
            # channels_last map on a device whose kernel would return NCHW: the same fp32 maths (one rounding of
            # the output, as the fp32 path below) without leaving channels_last (srkit/group_norm.py).
            return group_norm_nhwc(x, self.num_groups, self.weight, self.bias, self.eps)
        if x.dtype in (torch.bfloat16, torch.float16) and perf.current().gtasr_native_groupnorm:
            # The native kernels accumulate the statistics in fp32 already; only the normalised output is
            # rounded to x's dtype (error vs this class's fp32 path: tests/unit/test_perf_gtasr.py).
            w, b = self.weight, self.bias
            return F.group_norm(
                x,
                self.num_groups,
                None if w is None else w.to(x.dtype),
                None if b is None else b.to(x.dtype),
                self.eps,
            )
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).to(x.dtype)


def resample_filter_2d(taps: tuple[float, ...]) -> Tensor:
    """Separable resampling kernel ``f f^T / (sum f)^2`` as [1, 1, k, k] (EDM Conv2d).

    Stored in float16 like the released checkpoint's buffers ((1, 1) gives 0.25 exactly).
    """
    f = torch.tensor(taps, dtype=torch.float64)
    return (torch.outer(f, f) / f.sum().square()).to(torch.float16)[None, None]


class ResampleConv2d(nn.Module):
    """EDM conv with optional x2 up/down resampling before it: depthwise filter, then the conv.

    With the [1, 1] filter, down is 2x2 average pooling and up is nearest x2 (the filter is scaled by 4
    and applied transposed with stride 2); ``perf.gtasr_box_resample`` then runs them as exactly that
    (``avg_pool2d``, ``interpolate(nearest)``) instead of depthwise (transposed) convolutions.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        *,
        up: bool = False,
        down: bool = False,
        resample_taps: tuple[float, ...] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("ResampleConv2d: up and down are exclusive")
        self.in_channels, self.out_channels, self.up, self.down = in_channels, out_channels, up, down
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("resample_filter", resample_filter_2d(resample_taps) if up or down else None)
        # Two equal taps: the 2x2 box (every weight 1/4). The buffer always follows the config (the loaders
        # rebuild it from the taps, gtasr_core/checkpoint.py), so this is fixed at construction.
        self.box = len(resample_taps) == 2 and resample_taps[0] == resample_taps[1]

    def forward(self, x: Tensor) -> Tensor:
        if self.up and self.box and self.weight.shape[-1] in (1, 3) and perf.current().fused_upsample_conv:
            # nearest x2 then the conv, without the x2 map (srkit/upsample_conv.py)
            return upsample2x_conv(x, self.weight.to(x.dtype), self.bias.to(x.dtype))
        if self.resample_filter is not None and self.box and perf.current().gtasr_box_resample:
            # Pooling kernels run at memory bandwidth; a depthwise transposed convolution of a 768 x 1024²
            # map is far slower on CUDA. Up is bit-exact; down sums in another order (fp32 rounding).
            x = F.avg_pool2d(x, 2) if self.down else F.interpolate(x, scale_factor=2, mode="nearest")
        elif self.resample_filter is not None:
            f = self.resample_filter.to(x.dtype)
            pad = (f.shape[-1] - 1) // 2
            if self.up:
                x = F.conv_transpose2d(
                    x, (f * 4).tile(self.in_channels, 1, 1, 1), groups=self.in_channels, stride=2, padding=pad
                )
            else:
                x = F.conv2d(
                    x, f.tile(self.in_channels, 1, 1, 1), groups=self.in_channels, stride=2, padding=pad
                )
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), padding=self.weight.shape[-1] // 2)
