"""Building blocks of the FLUX.1 autoencoder (our implementation of the diffusers ``AutoencoderKL`` layers).

Module and parameter names follow the diffusers key layout (``resnets.{j}.norm1``, ``downsamplers.0.conv``,
``attentions.0.to_q``), so a diffusers-layout state dict loads directly; ``vae_keys`` converts the BFL/ComfyUI
layout. Reference maths: Rombach et al. 2022 (LDM autoencoder), BFL ``flux/modules/autoencoder.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...srkit import perf
from ...srkit.group_norm import LayoutGroupNorm
from ...srkit.upsample_conv import upsample2x_conv
from .attention import gemm_single_head_attention
from .tail import upsample_conv_tail

__all__ = [
    "ATTN_QUERY_CHUNK",
    "DownBlock",
    "Downsample",
    "MidBlock",
    "ResnetBlock",
    "SpatialSelfAttention",
    "UPSAMPLE_CHUNK_ELEMENTS",
    "UpBlock",
    "Upsample",
    "group_norm",
    "norm_silu",
    "resnet_stack",
    "run_layers",
    "single_head_attention",
]


# Queries per attention call in the mid block. At a 4096² image the mid block sees 256² = 65,536 positions;
# when the fused SDPA kernels cannot run (head dim 512 exceeds flash attention's limit; CPU/fp32 fallbacks),
# the math path would hold a 65,536² score matrix (16 GiB in float32). Chunking queries bounds that to
# chunk × positions and is exact (softmax is per query row).
ATTN_QUERY_CHUNK = 4096
# Elements of the 2x up-sampled map per chunk of the chunked Upsample (256 Mi values: 512 MiB in bf16).
UPSAMPLE_CHUNK_ELEMENTS = 2**28


def group_norm(channels: int, groups: int, eps: float) -> nn.GroupNorm:
    """GroupNorm with affine scale and shift, as every norm in the FLUX VAE; a channels_last map stays
    channels_last (``srkit.group_norm.LayoutGroupNorm``: same parameters and keys)."""
    return LayoutGroupNorm(num_groups=groups, num_channels=channels, eps=eps, affine=True)


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """silu(norm(x)). Without autograd the SiLU runs in place on the fresh norm output: at a 4096² decode the
    2048²×256 maps are 4 GiB each in float32, and this drops one of them from the peak (ComfyUI's VAE does the
    same). With autograd on, SiLU's backward needs its input, so it stays out of place."""
    return F.silu(norm(x), inplace=not torch.is_grad_enabled())


def single_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, query_chunk: int = ATTN_QUERY_CHUNK
) -> torch.Tensor:
    """softmax(q kᵀ / √d) v for one head, ``query_chunk`` queries at a time. q, k, v: [B, N, d] -> [B, N, d]."""
    if query_chunk < 1:
        raise ValueError(f"query_chunk={query_chunk}: must be >= 1")
    if perf.current().vae_gemm_attention:
        return gemm_single_head_attention(q, k, v)
    # Add the head axis SDPA expects: [B, 1, N, d]; its default scale is 1/sqrt(d).
    q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
    if q.shape[2] <= query_chunk:
        return F.scaled_dot_product_attention(q, k, v).squeeze(1)
    parts = [F.scaled_dot_product_attention(qc, k, v) for qc in q.split(query_chunk, dim=2)]
    return torch.cat(parts, dim=2).squeeze(1)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), 1×1 shortcut if channels change."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups, eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = group_norm(out_channels, groups, eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(norm_silu(self.norm1, x))
        h = self.conv2(norm_silu(self.norm2, h))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class Downsample(nn.Module):
    """×½ by a stride-2 3×3 conv after zero padding one column right and one row below (asymmetric, as FLUX)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """×2 by nearest-neighbour interpolation then a 3×3 conv.

    With ``perf.fused_upsample_conv`` both branches run it as a stride-2 transposed conv with the 4×4 kernel of
    ``srkit.upsample_conv.transposed_kernel`` (4/9 of the multiply-adds, no 2× input map): chunked through
    ``upsample_conv_tail``, whole through ``upsample2x_conv``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if perf.current().vae_chunked_upsample:
            # Same maths in row chunks: the 2x map (2 GiB at the 2048² level of a 4K decode) never exists whole.
            rows = max(1, UPSAMPLE_CHUNK_ELEMENTS // max(1, x.shape[0] * x.shape[1] * x.shape[3] * 4))
            return upsample_conv_tail(
                x, self.conv.weight, self.conv.bias, upscale=2, shift=0, chunk_rows=rows
            )
        if perf.current().fused_upsample_conv:
            return upsample2x_conv(x, self.conv.weight, self.conv.bias)
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class SpatialSelfAttention(nn.Module):
    """Single-head self-attention over all positions with a residual: x + out(attn(norm(x)))."""

    def __init__(self, channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.group_norm = group_norm(channels, groups, eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        # A list of one so the key reads `to_out.0`, as in diffusers (which keeps a Dropout at index 1).
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.group_norm(x).flatten(2).transpose(1, 2)  # [B, H*W, C]
        h = single_head_attention(self.to_q(h), self.to_k(h), self.to_v(h))
        h = self.to_out[0](h).transpose(1, 2).reshape(batch, channels, height, width)
        return x + h


class MidBlock(nn.Module):
    """Lowest-resolution block: resnet, self-attention, resnet (channels unchanged)."""

    def __init__(self, channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups, eps) for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialSelfAttention(channels, groups, eps)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


def run_layers(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Apply ``layers`` in sequence, consuming ``x``.

    Callers pass their only reference to the activation, so each layer's input is freed as soon as the layer
    returns. (A block's ``forward(x)`` would keep its input alive through all its layers via the caller's
    variable: 4 GiB in float32 at the 2048²×256 level of a 4096² decode.)
    """
    for layer in layers:
        x = layer(x)
    return x


def resnet_stack(
    in_channels: int, out_channels: int, num_layers: int, groups: int, eps: float
) -> nn.ModuleList:
    """``num_layers`` resnets; the first maps ``in_channels`` to ``out_channels``, the rest keep them."""
    chans = [in_channels] + [out_channels] * num_layers
    return nn.ModuleList([ResnetBlock(chans[i], chans[i + 1], groups, eps) for i in range(num_layers)])


class DownBlock(nn.Module):
    """Encoder level: ``num_layers`` resnets (first one changes channels), then an optional ×½ downsample."""

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int, downsample: bool, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.resnets = resnet_stack(in_channels, out_channels, num_layers, groups, eps)
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if downsample else None

    def layers(self) -> list[nn.Module]:
        """Sub-layers in order of application (see :func:`run_layers`)."""
        return [*self.resnets, *(self.downsamplers or [])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers(), x)


class UpBlock(nn.Module):
    """Decoder level: ``num_layers`` resnets (first one changes channels), then an optional ×2 upsample."""

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int, upsample: bool, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.resnets = resnet_stack(in_channels, out_channels, num_layers, groups, eps)
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def layers(self) -> list[nn.Module]:
        """Sub-layers in order of application (see :func:`run_layers`)."""
        return [*self.resnets, *(self.upsamplers or [])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers(), x)
