"""The GTASR denoiser body F: EDM SongUNet (DDPM++) with Swin blocks on pixel-unshuffled inputs.

Karras et al. 2022 (EDM, arXiv 2206.00364) ``SongUNet`` as modified by CTMSR/GTASR (docs/gtasr.md §2.2):
x (B x 3 x 4h x 4w) is pixel-unshuffled to 48 channels and concatenated with the LR image; the UNet runs
at LR resolution and ends in 192 channels, which a nearest-upsampler head turns into the HR image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..srkit import perf
from ..srkit.layout import in_layout_of, layout_of
from ..srkit.upsample_conv import transposed_kernel, upsample2x_conv
from .config import BlockSpec, GTASRConfig, decoder_plan, encoder_plan, group_count
from .layers import FP32GroupNorm, ResampleConv2d
from .swin import SwinLayer

__all__ = ["SongUNet", "UNetBlock", "positional_embedding"]

_EDM_NORM_EPS = 1e-6  # block_kwargs eps of SongUNet (the EDM default 1e-5 is overridden)


def positional_embedding(c_noise: Tensor, channels: int, max_positions: float = 1e4) -> Tensor:
    """EDM DDPM++ noise embedding with ``endpoint=True``, sin half first (the reference swaps halves).

    c_noise: [B] -> [B, channels]; frequencies (1/max_positions)^(i/(channels/2 - 1)), computed in fp32.
    """
    half = channels // 2
    freqs = torch.arange(half, dtype=torch.float32, device=c_noise.device) / (half - 1)
    freqs = (1.0 / max_positions) ** freqs
    angles = torch.outer(c_noise.float(), freqs)  # [B, half]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _edm_norm(channels: int) -> FP32GroupNorm:
    return FP32GroupNorm(group_count(channels), channels, eps=_EDM_NORM_EPS)


class UNetBlock(nn.Module):
    """EDM residual block (``adaptive_scale=False``) with an optional Swin layer after it.

    h = conv0(silu(norm0(x))); h = conv1(dropout(silu(norm1(h + affine(emb))))); x' = (h + skip(x)) * s;
    with Swin: x' = swin(x') * s, s = sqrt(1/2).
    """

    def __init__(self, spec: BlockSpec, cfg: GTASRConfig) -> None:
        super().__init__()
        cin, cout = spec.in_channels, spec.out_channels
        self.in_channels, self.out_channels = cin, cout
        self.dropout = cfg.dropout
        self.norm0 = _edm_norm(cin)
        self.conv0 = ResampleConv2d(
            cin, cout, 3, up=spec.up, down=spec.down, resample_taps=cfg.resample_filter
        )
        self.affine = nn.Linear(cfg.emb_channels, cout)
        self.norm1 = _edm_norm(cout)
        self.conv1 = ResampleConv2d(cout, cout, 3)
        self.skip = None
        if cin != cout or spec.up or spec.down:
            # resample_proj=True: the skip path always has a 1x1 projection.
            self.skip = ResampleConv2d(
                cin, cout, 1, up=spec.up, down=spec.down, resample_taps=cfg.resample_filter
            )
        self.swin_layer = None
        if spec.swin_window:
            self.swin_layer = SwinLayer(
                cout,
                cfg.swin_embed_dim,
                cfg.swin_num_heads,
                spec.swin_window,
                spec.swin_shift,
                cfg.swin_depth,
                cfg.swin_mlp_ratio,
                cfg.swin_use_conv,
            )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        skip_scale = math.sqrt(0.5)
        h = self.conv0(F.silu(self.norm0(x)))
        h = F.silu(self.norm1(h + self.affine(emb)[:, :, None, None].to(h.dtype)))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        x = (h + (self.skip(x) if self.skip is not None else x)) * skip_scale
        # Free conv1's output before the Swin layer: at LR 1024 it is a 0.375 GiB map that would otherwise
        # stay alive through the window attention, where the network peaks (benchmarks/peak_memory.py).
        del h
        if self.swin_layer is not None:
            x = self.swin_layer(x) * skip_scale
        return x


def up_conv(conv: nn.Conv2d, h: Tensor, kernel: Tensor | None = None) -> Tensor:
    """``conv(nearest_up2(h))`` of the upsampler head; with ``perf.fused_upsample_conv`` as one transposed
    convolution (srkit/upsample_conv.py; ``kernel``: its 4x4 kernel if already made). The same maths on a slab,
    so :meth:`SongUNet.head_chunked` stays exact."""
    if perf.current().fused_upsample_conv:
        return upsample2x_conv(h, conv.weight, conv.bias, kernel)
    return conv(F.interpolate(h, scale_factor=2, mode="nearest"))


class SongUNet(nn.Module):
    """F(x, c_noise, lq): x [B, 3, 4h, 4w], c_noise [B], lq [B, 3, h, w] -> [B, 3, 4h, 4w].

    Keys follow the reference (``map_layer0``, ``enc.64x64_conv``, ``dec.8x8_in0``, ``conv_up1`` ...).
    """

    def __init__(self, cfg: GTASRConfig) -> None:
        super().__init__()
        self.config = cfg
        mc, res0 = cfg.model_channels, cfg.level_resolution(0)
        self.map_layer0 = nn.Linear(cfg.noise_channels, cfg.emb_channels)
        self.map_layer1 = nn.Linear(cfg.emb_channels, cfg.emb_channels)
        # Nearest-upsampler head: two (x2 nearest, 3x3 conv, LeakyReLU 0.2) stages, then 3x3 to RGB.
        self.conv_up1 = nn.Conv2d(mc, mc, 3, padding=1)
        self.conv_up2 = nn.Conv2d(mc, mc, 3, padding=1)
        self.conv_last = nn.Conv2d(mc, cfg.in_channels, 3, padding=1)
        self.enc = nn.ModuleDict({f"{res0}x{res0}_conv": ResampleConv2d(cfg.unshuffled_channels, mc, 3)})
        for spec in encoder_plan(cfg):
            self.enc[spec.name] = UNetBlock(spec, cfg)
        dec_specs = decoder_plan(cfg)
        self._takes_skip = [spec.takes_skip for spec in dec_specs]
        self.dec = nn.ModuleDict({spec.name: UNetBlock(spec, cfg) for spec in dec_specs})
        cout = dec_specs[-1].out_channels
        self.dec[f"{res0}x{res0}_aux_norm"] = _edm_norm(cout)
        self.dec[f"{res0}x{res0}_aux_conv"] = ResampleConv2d(cout, mc, 3)

    def embed_noise(self, c_noise: Tensor) -> Tensor:
        """c_noise [B] -> embedding [B, emb_channels] (positional embedding, then a 2-layer SiLU MLP)."""
        emb = positional_embedding(c_noise, self.config.noise_channels, self.config.max_positions)
        emb = emb.to(self.map_layer0.weight.dtype)
        return F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))

    def forward(self, x: Tensor, c_noise: Tensor, lq: Tensor) -> Tensor:
        emb = self.embed_noise(c_noise)
        # In the network's own layout, at LR size (srkit/layout.py): pixel_unshuffle returns NCHW, and lq may be an
        # NHWC view (ComfyUI's IMAGE, read_image), which would put every convolution of an NCHW network in NHWC.
        h = in_layout_of(
            torch.cat([F.pixel_unshuffle(x, self.config.scale), lq], dim=1), self.conv_last.weight
        )
        blocks = list(self.enc.values())
        h = blocks[0](h)
        skips = [h]
        for block in blocks[1:]:
            h = block(h, emb)
            skips.append(h)
        dec = list(self.dec.values())
        for block, takes_skip in zip(dec[:-2], self._takes_skip, strict=True):
            if takes_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        h = dec[-1](F.silu(dec[-2](h)))  # aux_norm, aux_conv: 192 channels at LR size
        rows = perf.current().gtasr_head_rows
        if rows and h.shape[2] > rows:
            return self.head_chunked(h, rows)
        # In-place activations (as the reference's LeakyReLU(inplace=True)): at 4K each 192-channel HR
        # map is 12.9 GB in fp32.
        h = F.leaky_relu(up_conv(self.conv_up1, h), 0.2, inplace=True)
        h = F.leaky_relu(up_conv(self.conv_up2, h), 0.2, inplace=True)
        return self.conv_last(h)

    def head_chunked(self, h: Tensor, rows: int, halo: int = 2) -> Tensor:
        """The nearest-upsampler head on slabs of ``rows`` LR rows (+ ``halo`` rows each side): exact, since
        each kept output row sees the same inputs as in the whole-image head (two 3x3 convs at 2x and one at
        4x reach 1 + 1 + 1 HR rows = under one LR row; zero padding only at the true border). The 4x-size
        192-channel maps (6 GiB each in bf16 at 4K) then exist one slab at a time. h: [B, C, H, W] at LR size.
        """
        b, _, height, width = h.shape
        s = 4  # two x2 nearest stages
        layout = layout_of(h)
        out = torch.empty(
            b,
            self.conv_last.out_channels,
            height * s,
            width * s,
            dtype=h.dtype,
            device=h.device,
            memory_format=layout,
        )
        # the fused path's 4x4 kernels, made once for all slabs
        k1, k2 = (
            (transposed_kernel(self.conv_up1.weight), transposed_kernel(self.conv_up2.weight))
            if perf.current().fused_upsample_conv
            else (None, None)
        )
        for a in range(0, height, rows):
            z = min(a + rows, height)
            lo, hi = max(a - halo, 0), min(z + halo, height)
            y = F.leaky_relu(up_conv(self.conv_up1, h[:, :, lo:hi], k1), 0.2, inplace=True)
            y = F.leaky_relu(up_conv(self.conv_up2, y, k2), 0.2, inplace=True)
            out[:, :, a * s : z * s] = self.conv_last(y)[:, :, (a - lo) * s : (z - lo) * s]
            del y
        return out
