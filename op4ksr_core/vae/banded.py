"""Exact tiled F16 VAE encode/decode in row bands: the opt-in out-of-memory fallback of OP4KSR.

Usual tiled VAEs run each tile through the whole network and blend the results; every tile then has its own
GroupNorm statistics and attention context (seams), and a ``partitioned`` decode would shift every tile by
its 1-px offset. Here the tiling is done per layer instead:

- Full-size activations live on a ``store`` device (ComfyUI's intermediate device, normally CPU RAM); each
  layer runs on the ``compute`` device one band of output rows at a time, reading the input rows its kernel
  needs (a 1-row halo for 3×3 convs), with zeros beyond the image exactly where the untiled conv pads.
- Every GroupNorm first accumulates its statistics over all bands (float64 sums), so each band is normalised
  with the whole image's mean and variance.
- The mid block (self-attention) runs on the whole map at latent resolution (1/16 per side), where it is small.
- The decoder tail works in global coordinates: the ``partitioned`` 1-px shift moves the whole image once.

The result equals :meth:`F16VAE.encode` / :meth:`F16VAE.decode` up to float rounding (tests/unit/test_op4ksr_vae_banded.py).
Peak compute-device memory is one band per layer (``band_values`` input values) plus the latent-size mid block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...srkit.layout import in_layout_of
from .config import check_decode_mode
from .layers import Downsample, ResnetBlock, Upsample, norm_silu
from .model import F16VAE
from .tail import DECODE_SHIFT

# Input values per band on the compute device: 2^25 is 64 MiB in bf16, i.e. 128 rows of a 2048-px-wide
# 128-channel map; small enough for any GPU that holds the weights, large enough to keep kernels busy.
DEFAULT_BAND_VALUES = 1 << 25

Pre = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Bands:
    """Where band work runs (``compute``), where full maps are kept (``store``) and the band size in values."""

    compute: torch.device
    store: torch.device
    band_values: int = DEFAULT_BAND_VALUES

    def __post_init__(self) -> None:
        if not isinstance(self.band_values, int) or self.band_values < 1:
            raise ValueError(f"band_values={self.band_values!r}: must be an int >= 1 (input values per band)")


def _source_rows(
    x: torch.Tensor, lo: int, hi: int, pre: Pre | None, up: int, bands: Bands, dtype: torch.dtype
) -> torch.Tensor:
    """Rows [lo, hi) of ``nearest_up(pre(x), up)`` on the compute device; rows outside the map are zero."""
    batch, channels, height, width = x.shape
    out = torch.zeros(batch, channels, hi - lo, width * up, device=bands.compute, dtype=dtype)
    a, b = max(lo, 0), min(hi, height * up)
    if b > a:
        s0, s1 = a // up, (b - 1) // up + 1
        src = x[:, :, s0:s1].to(bands.compute, dtype)
        if pre is not None:
            src = pre(src)  # before the zero rows: the untiled conv zero-pads the activated map
        if up > 1:
            src = src.repeat_interleave(up, dim=2).repeat_interleave(up, dim=3)
        out[:, :, a - lo : b - lo] = src[:, :, a - s0 * up : b - s0 * up]
    return out


def conv_bands(
    x: torch.Tensor,
    conv: nn.Conv2d,
    bands: Bands,
    *,
    pad: tuple[int, int, int, int],
    pre: Pre | None = None,
    up: int = 1,
    residual: Callable[[int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``conv(zero_pad(nearest_up(pre(x), up), pad)) (+ residual)`` computed in bands of output rows.

    x: [B, C, H, W] on the store device; pad = (top, bottom, left, right) zeros around the up-sampled map;
    ``residual(a, b)`` returns output rows [a, b) to add (e.g. a resnet's skip). Returns the output on the
    store device. The conv's own ``padding`` is ignored (``pad`` replaces it).
    """
    top, bottom, left, right = pad
    k, stride = conv.weight.shape[-1], conv.stride[0]
    batch, channels, height, width = x.shape
    out_h = (height * up + top + bottom - k) // stride + 1
    out_w = (width * up + left + right - k) // stride + 1
    dtype = conv.weight.dtype
    out = torch.empty(batch, conv.out_channels, out_h, out_w, device=bands.store, dtype=dtype)
    rows = max(1, bands.band_values // max(1, batch * channels * width * up * stride))
    for a in range(0, out_h, rows):
        b = min(a + rows, out_h)
        lo = a * stride - top
        src = _source_rows(x, lo, (b - 1) * stride - top + k, pre, up, bands, dtype)
        y = F.conv2d(F.pad(src, (left, right)), conv.weight, conv.bias, stride=conv.stride)
        if residual is not None:
            y = y + residual(a, b)
        out[:, :, a:b] = y.to(bands.store)
    return out


def group_stats(x: torch.Tensor, norm: nn.GroupNorm, bands: Bands) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm (mean, 1/std) per (batch, group) of the whole map ``x`` [B, C, H, W], summed band by band."""
    batch, channels, height, width = x.shape
    groups = norm.num_groups
    total = torch.zeros(batch, groups, dtype=torch.float64, device=bands.compute)
    squares = torch.zeros_like(total)
    rows = max(1, bands.band_values // max(1, batch * channels * width))
    for a in range(0, height, rows):
        xb = x[:, :, a : a + rows].to(bands.compute, torch.float64).reshape(batch, groups, -1)
        total += xb.sum(-1)
        squares += xb.square().sum(-1)
    count = channels // groups * height * width
    mean = total / count
    var = (squares / count - mean.square()).clamp_min(0)  # biased, as GroupNorm
    return mean, torch.rsqrt(var + norm.eps)


def norm_silu_with(norm: nn.GroupNorm, stats: tuple[torch.Tensor, torch.Tensor], silu: bool = True) -> Pre:
    """Pointwise ``silu(norm(x))`` of a band, using the whole map's statistics ``stats``."""
    mean, rstd = stats

    def apply(xb: torch.Tensor) -> torch.Tensor:
        batch, channels = xb.shape[:2]
        g = xb.float().reshape(batch, norm.num_groups, -1)
        g = (g - mean[..., None].float()) * rstd[..., None].float()
        y = g.reshape(xb.shape) * norm.weight.float()[:, None, None] + norm.bias.float()[:, None, None]
        return (F.silu(y) if silu else y).to(xb.dtype)

    return apply


def _same_pad(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    p = conv.padding[0]
    return (p, p, p, p)


def resnet_bands(block: ResnetBlock, x: torch.Tensor, bands: Bands) -> torch.Tensor:
    """``ResnetBlock.forward`` in bands: two passes per conv (statistics, then normalise + conv)."""
    h = conv_bands(
        x,
        block.conv1,
        bands,
        pad=_same_pad(block.conv1),
        pre=norm_silu_with(block.norm1, group_stats(x, block.norm1, bands)),
    )
    dtype = block.conv2.weight.dtype

    def skip(a: int, b: int) -> torch.Tensor:
        xb = x[:, :, a:b].to(bands.compute, dtype)
        return xb if block.conv_shortcut is None else block.conv_shortcut(xb)

    return conv_bands(
        h,
        block.conv2,
        bands,
        pad=_same_pad(block.conv2),
        pre=norm_silu_with(block.norm2, group_stats(h, block.norm2, bands)),
        residual=skip,
    )


def layer_bands(layer: nn.Module, x: torch.Tensor, bands: Bands) -> torch.Tensor:
    """One encoder/decoder level layer (resnet, ×½ or ×2 resampler) in bands."""
    if isinstance(layer, ResnetBlock):
        return resnet_bands(layer, x, bands)
    if isinstance(layer, Downsample):  # zero pad one row below and one column right, stride-2 conv
        return conv_bands(x, layer.conv, bands, pad=(0, 1, 0, 1))
    if isinstance(layer, Upsample):
        return conv_bands(x, layer.conv, bands, pad=_same_pad(layer.conv), up=2)
    raise TypeError(f"no banded form for {type(layer).__name__}")


@torch.no_grad()
def encode_banded(vae: F16VAE, image: torch.Tensor, bands: Bands) -> torch.Tensor:
    """Posterior mean [B, latent, H/down, W/down] of ``image`` [B, 3, H, W] in [-1, 1], as ``vae.encode``."""
    vae._check_image(image)
    enc = vae.encoder
    image = in_layout_of(image.to(bands.store, vae.dtype), enc.conv_in.weight)  # srkit/layout.py
    h = conv_bands(image, enc.conv_in, bands, pad=_same_pad(enc.conv_in))
    for block in enc.down_blocks:
        for layer in block.layers():
            h = layer_bands(layer, h, bands)
    h = enc.mid_block(h.to(bands.compute))  # latent resolution: whole map, attention needs it all
    mean, _ = enc.conv_out(norm_silu(enc.conv_norm_out, h)).chunk(2, dim=1)
    return mean


@torch.no_grad()
def decode_banded(
    vae: F16VAE, latent: torch.Tensor, bands: Bands, decode_mode: str | None = None
) -> torch.Tensor:
    """Image [B, 3, h·down, w·down] from a raw latent, as ``vae.decode`` (same decode modes)."""
    vae._check_latent(latent)
    shift = DECODE_SHIFT[check_decode_mode(decode_mode or vae.decode_mode, vae.config)]
    dec = vae.decoder
    h = dec.mid_block(dec.conv_in(in_layout_of(latent.to(bands.compute, vae.dtype), dec.conv_in.weight)))
    h = h.to(bands.store)
    for block in dec.up_blocks:
        for layer in block.layers():
            h = layer_bands(layer, h, bands)
    # The tail in global coordinates: the partitioned shift moves the whole image by one pixel, once.
    pre = norm_silu_with(dec.conv_norm_out, group_stats(h, dec.conv_norm_out, bands))
    halo = dec.conv_out.weight.shape[-1] // 2
    pad = (halo + shift, halo - shift, halo + shift, halo - shift)
    return conv_bands(h, dec.conv_out, bands, pad=pad, pre=pre, up=vae.config.tail_upscale)
