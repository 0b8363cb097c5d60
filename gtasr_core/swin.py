"""The Swin window-attention layer of the GTASR UNet (Liu et al. 2021, arXiv 2103.14030, as CTMSR/GTASR use it).

Feature maps stay B x C x H x W, norms are GroupNorm(32), the MLP is two 1x1 convs, attention runs in
non-overlapping windows with a learned relative-position bias (docs/gtasr.md §2.2). Masks and windows are
computed per call, so any map size that is a multiple of the window works. A channels_last map stays
channels_last through the block (window reverse and rolls keep the layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..srkit import perf
from ..srkit.group_norm import is_channels_last
from .layers import FP32GroupNorm

__all__ = [
    "SwinBlock",
    "SwinLayer",
    "WindowAttention",
    "relative_position_index",
    "roll_hw",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]


# ---- Swin window maths (pure) -------------------------------------------------------------------------


def relative_position_index(window: int) -> Tensor:
    """[w*w, w*w] int64 index into the (2w-1)^2 bias table: (dy + w - 1) * (2w - 1) + (dx + w - 1)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, N]
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # [2, N, N], both in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def window_partition(x: Tensor, window: int) -> Tensor:
    """[B, C, H, W] -> [B * nW, w*w, C], windows in row-major order, tokens row-major inside."""
    return rearrange(x, "b c (nh wh) (nw ww) -> (b nh nw) (wh ww) c", wh=window, ww=window)


def window_reverse(windows: Tensor, window: int, h: int, w: int, channels_last: bool = False) -> Tensor:
    """Inverse of :func:`window_partition`: [B * nW, w*w, C] -> [B, C, H, W], stored NCHW or, with
    ``channels_last``, NHWC (a channels_last network's residual add then reads both operands in one layout)."""
    if channels_last:
        nhwc = rearrange(
            windows, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=h // window, nw=w // window, wh=window
        )
        return nhwc.permute(0, 3, 1, 2)
    return rearrange(
        windows, "(b nh nw) (wh ww) c -> b c (nh wh) (nw ww)", nh=h // window, nw=w // window, wh=window
    )


def roll_hw(x: Tensor, shift: int) -> Tensor:
    """``torch.roll`` of a [B, C, H, W] map by ``shift`` along H and W, keeping a channels_last map NHWC
    (CUDA's roll returns a contiguous copy: rolled here on the NHWC view instead)."""
    if is_channels_last(x):
        return torch.roll(x.permute(0, 2, 3, 1), shifts=(shift, shift), dims=(1, 2)).permute(0, 3, 1, 2)
    return torch.roll(x, shifts=(shift, shift), dims=(2, 3))


def shifted_window_mask(
    h: int, w: int, window: int, shift: int, device: torch.device | None = None
) -> Tensor:
    """Additive mask [nW, N, N] for shifted windows (Swin §3.2): -100 between tokens whose pre-roll
    regions differ, so wrapped-around pixels do not attend to each other; 0 elsewhere."""
    region = torch.zeros(1, 1, h, w, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for ys in bounds:
        for xs in bounds:
            region[:, :, ys, xs] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # [nW, N]
    diff = labels[:, None, :] - labels[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


# ---- Swin modules -------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative-position bias table [(2w-1)^2, heads]."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.window, self.num_heads = window, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: [B*nW, N, C]; mask: [nW, N, N] additive or None -> [B*nW, N, C].

        Windows are independent, so they run ``perf.gtasr_attn_windows`` at a time (0: all at once): exact, and the
        per-chunk q, k, v, bias and (on SDPA's math path) the fp32 scores stay bounded; at LR 1024 the level-0
        blocks have 16,384 windows, where the network peaked (benchmarks/peak_memory.py).
        """
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        n = x.shape[1]
        # contiguous: the fused kernels want the mask's last dim dense (the permuted view has stride heads)
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()  # [heads, N, N]
        chunk = perf.current().gtasr_attn_windows
        if not chunk or x.shape[0] <= chunk:
            return self._attend(x, bias, mask, 0)
        out = torch.empty_like(x)
        for a in range(0, x.shape[0], chunk):
            out[a : a + chunk] = self._attend(x[a : a + chunk], bias, mask, a)
        return out

    def _attend(self, x: Tensor, bias: Tensor, mask: Tensor | None, first: int) -> Tensor:
        """Windows ``first .. first + len(x)`` of the batch: x [W, N, C], bias [heads, N, N] -> [W, N, C]."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = bias.to(q.dtype)[None]  # [1, heads, N, N], broadcast over the windows
        if mask is not None:
            # window j of the batch is window j % nW of its image
            idx = torch.arange(first, first + bw, device=mask.device) % mask.shape[0]
            attn_mask = attn_mask + mask[idx][:, None].to(q.dtype)  # [W, heads, N, N]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # scale = head_dim ** -0.5
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm Swin block on [B, C, H, W]: x + W-MSA(norm1(x)), then x + MLP(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = FP32GroupNorm(32, dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = FP32GroupNorm(32, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Conv2d(dim, hidden, 1))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Conv2d(hidden, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        if h % self.window or w % self.window:
            raise ValueError(
                f"Swin map {h}x{w} is not a multiple of its window {self.window}; pad the LR "
                "input to the config's lr_multiple"
            )
        y = self.norm1(x)
        mask = None
        if self.shift:
            y = roll_hw(y, -self.shift)
            mask = shifted_window_mask(h, w, self.window, self.shift, device=x.device)
        windows = window_partition(y, self.window)
        del y  # the norm's output is not needed during the attention (benchmarks/peak_memory.py)
        y = self.attn(windows, mask)
        del windows
        y = window_reverse(y, self.window, h, w, channels_last=is_channels_last(x))
        if self.shift:
            y = roll_hw(y, self.shift)
        x = x + y
        return x + self.mlp(self.norm2(x))


class _Proj(nn.Module):
    """1x1 conv under the name ``proj`` (keeps the reference keys ``patch_embed.proj.*``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class SwinLayer(nn.Module):
    """CTMSR Swin ``BasicLayer``: 1x1 in -> Swin blocks -> 1x1 out -> (3x3 conv + residual if use_conv).

    Without ``use_conv`` the reference layer has no residual; that is kept.
    """

    def __init__(
        self,
        channels: int,
        embed_dim: int,
        num_heads: int,
        window: int,
        shift: int,
        depth: int,
        mlp_ratio: float,
        use_conv: bool,
    ) -> None:
        super().__init__()
        self.patch_embed = _Proj(channels, embed_dim)
        self.patch_unembed = _Proj(embed_dim, channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dim, num_heads, window, shift if i % 2 else 0, mlp_ratio) for i in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.patch_embed(x)
        for block in self.blocks:
            y = block(y)
        y = self.patch_unembed(y)
        return self.conv(y) + x if self.conv is not None else y
