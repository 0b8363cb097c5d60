"""Nearest ×2 upsampling followed by a 3×3 or 1×1 convolution, computed without the upsampled map.

3×3: ``conv2d(nearest_up2(x), W, padding=1)`` equals ``conv_transpose2d(x, V, stride=2, padding=1)`` with the
4×4 kernel of :func:`transposed_kernel`. Per output pixel and channel pair that is 4 multiply-adds instead of 9,
and the 4×-size input map is never written or read. 1×1: ``conv(nearest_up2(x))`` equals
``nearest_up2(conv(x))`` (every output pixel is the same dot product), at a quarter of the multiply-adds.

Exact in real arithmetic; in floating point V's summed taps (w1 + w2, w0 + w1) are rounded once to the weight
dtype (float32: ~1e-7 relative; bf16: 2^-9 on those taps, the size of bf16 activation rounding), and the sums
run in another order. Used by the GTASR UNet's up blocks and head (``perf.fused_upsample_conv``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nearest2x_then_conv", "transposed_kernel", "upsample2x_conv"]

# Row a of _TAPS says which 3×3 taps k add up to tap a of the 4×4 transposed kernel (see transposed_kernel).
_TAPS = ((0.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0))


def transposed_kernel(weight: Tensor) -> Tensor:
    """[C_out, C_in, 3, 3] conv weight -> [C_in, C_out, 4, 4] ``conv_transpose2d`` weight (stride 2, padding 1).

    In 1-D, with u = nearest_up2(x) zero-padded and y = conv(u, w): y[2i] = w0·x[i-1] + (w1 + w2)·x[i] and
    y[2i+1] = (w0 + w1)·x[i] + w2·x[i+1]. A stride-2 transposed convolution with padding 1 sends x[i] to
    y[2i - 1 + a] with tap v[a], so v = (w2, w1 + w2, w0 + w1, w0); at the borders both sides see zeros. In 2-D
    the rows and the columns combine the same way: V[i, o] = M W[o, i] Mᵀ with M = ``_TAPS`` (4×3), summed in
    float32 and rounded once to the weight's dtype.
    """
    if weight.dim() != 4 or weight.shape[-2:] != (3, 3):
        raise ValueError(f"transposed_kernel: needs a [C_out, C_in, 3, 3] weight, got {tuple(weight.shape)}")
    m = torch.tensor(_TAPS, dtype=torch.float32, device=weight.device)
    return torch.einsum("ap,bq,oipq->ioab", m, m, weight.float()).to(weight.dtype)


def nearest2x_then_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The reference: ``conv2d(nearest_up2(x), weight, bias)`` with 'same' zero padding (odd square kernel)."""
    return F.conv2d(
        F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=weight.shape[-1] // 2
    )


def upsample2x_conv(x: Tensor, weight: Tensor, bias: Tensor | None, kernel: Tensor | None = None) -> Tensor:
    """:func:`nearest2x_then_conv` without the upsampled map. x: [B, C_in, H, W] -> [B, C_out, 2H, 2W].

    weight: [C_out, C_in, k, k] with k = 3 (transposed convolution) or 1 (convolution, then nearest ×2).
    ``kernel``: ``transposed_kernel(weight)`` when the caller already has it (a loop over slabs makes it once).
    """
    k = weight.shape[-1]
    if k == 1:
        return F.interpolate(F.conv2d(x, weight, bias), scale_factor=2, mode="nearest")
    if k == 3:
        kernel = transposed_kernel(weight) if kernel is None else kernel
        return F.conv_transpose2d(x, kernel, bias, stride=2, padding=1)
    raise ValueError(f"upsample2x_conv: kernel {k}x{k} is not handled (1x1 or 3x3)")
