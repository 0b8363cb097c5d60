"""GTASR network configuration: a frozen dataclass, the released preset and the derived geometry.

The network is CTMSR's EDM "SongUNet" (DDPM++ style) with Swin window-attention blocks, run on
pixel-unshuffled HR inputs concatenated with the LR image (docs/gtasr.md §2.2). Everything that has a
size (block channels, Swin windows, the LR multiple the network needs) is derived here from the config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "GTASRConfig",
    "BlockSpec",
    "RELEASED",
    "TINY",
    "PRESETS",
    "group_count",
    "encoder_plan",
    "decoder_plan",
]


def group_count(channels: int, max_groups: int = 32, min_channels_per_group: int = 4) -> int:
    """EDM GroupNorm group count: ``min(32, C // 4)`` (EDM ``networks.py`` GroupNorm)."""
    return min(max_groups, channels // min_channels_per_group)


@dataclass(frozen=True)
class GTASRConfig:
    """Hyperparameters of a GTASR/CTMSR network (``network_g`` of ``options/test/ctmsr_test.yml``).

    Fixed in this family (not configurable): positional noise embedding, ``standard`` encoder and decoder,
    ``use_enc`` (pixel-unshuffle input), ``cond_lq`` (LR concatenated), ``upsampler='nearest'``,
    ``adaptive_scale=False``, ``resample_proj=True``, ``res_con=False``.
    """

    in_channels: int = 3
    scale: int = 4  # SR factor = pixel-unshuffle factor of the HR input
    model_channels: int = 192
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    channel_mult_emb: int = 4
    channel_mult_noise: int = 1
    num_blocks: int = 4
    # LR training size ("img_resolution"): names the blocks ("64x64_block0") and clamps Swin windows.
    train_resolution: int = 64
    attn_resolutions: tuple[int, ...] = (64, 32, 16, 8)
    resample_filter: tuple[float, ...] = (1.0, 1.0)
    dropout: float = 0.13
    swin_embed_dim: int = 192
    swin_num_heads: int = 6
    swin_window: int = 8
    swin_depth: int = 1
    swin_mlp_ratio: float = 4.0
    swin_use_conv: bool = True
    # EDM preconditioning (docs/gtasr.md §2.1): sigma is divided by sigma_scale inside c_skip / c_out.
    sigma_data: float = 0.5
    sigma_scale: float = 0.1
    c_noise_offset: float = 0.002
    max_positions: float = 1e4

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        object.__setattr__(self, "resample_filter", tuple(float(f) for f in self.resample_filter))
        self._check_scalars()
        self._check_geometry()
        self._check_norm_widths()

    def _check_scalars(self) -> None:
        positive = {
            "in_channels": self.in_channels,
            "model_channels": self.model_channels,
            "channel_mult_emb": self.channel_mult_emb,
            "channel_mult_noise": self.channel_mult_noise,
            "num_blocks": self.num_blocks,
            "swin_embed_dim": self.swin_embed_dim,
            "swin_num_heads": self.swin_num_heads,
            "swin_window": self.swin_window,
            "swin_depth": self.swin_depth,
            "sigma_data": self.sigma_data,
            "sigma_scale": self.sigma_scale,
            "c_noise_offset": self.c_noise_offset,
            "swin_mlp_ratio": self.swin_mlp_ratio,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"GTASRConfig.{name}={value!r} must be > 0")
        if self.scale != 4:
            # The 'nearest' head is hard-wired to two x2 steps (conv_up1, conv_up2) in the reference.
            raise ValueError(
                f"GTASRConfig.scale={self.scale} is not supported: the nearest-upsampler "
                "head has exactly two x2 stages (conv_up1, conv_up2), so use scale=4"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GTASRConfig.dropout={self.dropout} must be in [0, 1)")
        if self.swin_embed_dim % self.swin_num_heads:
            raise ValueError(
                f"swin_embed_dim={self.swin_embed_dim} must be divisible by "
                f"swin_num_heads={self.swin_num_heads}"
            )
        if self.swin_embed_dim % 32:
            raise ValueError(
                f"swin_embed_dim={self.swin_embed_dim} must be a multiple of 32 "
                "(the Swin blocks use GroupNorm with 32 groups)"
            )
        if self.noise_channels % 2:
            raise ValueError(
                f"model_channels*channel_mult_noise={self.noise_channels} must be even "
                "(sin/cos halves of the noise embedding)"
            )
        if int(self.swin_mlp_ratio * self.swin_embed_dim) != self.swin_mlp_ratio * self.swin_embed_dim:
            raise ValueError(f"swin_mlp_ratio={self.swin_mlp_ratio} times swin_embed_dim must be an integer")

    def _check_geometry(self) -> None:
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult={self.channel_mult} must be a non-empty tuple of ints >= 1")
        lowest = self.train_resolution >> (self.num_levels - 1)
        if lowest < 1 or self.train_resolution % (1 << (self.num_levels - 1)):
            raise ValueError(
                f"train_resolution={self.train_resolution} must be divisible by "
                f"2**(len(channel_mult)-1)={1 << (self.num_levels - 1)}"
            )
        if len(self.resample_filter) < 2 or sum(self.resample_filter) == 0:
            raise ValueError(
                f"resample_filter={self.resample_filter} needs >= 2 taps with a non-zero sum, e.g. (1, 1)"
            )

    def _check_norm_widths(self) -> None:
        for spec in encoder_plan(self) + decoder_plan(self):
            for width in (spec.in_channels, spec.out_channels):
                groups = group_count(width)
                if groups < 1 or width % groups:
                    raise ValueError(
                        f"block {spec.name}: {width} channels cannot be split into "
                        f"{groups} GroupNorm groups; use a model_channels that is a "
                        "multiple of 32"
                    )

    # ---- derived geometry -------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def emb_channels(self) -> int:
        return self.model_channels * self.channel_mult_emb

    @property
    def noise_channels(self) -> int:
        return self.model_channels * self.channel_mult_noise

    @property
    def unshuffled_channels(self) -> int:
        """Channels of the first conv's input: pixel-unshuffled HR x plus the LR image (51 released)."""
        return self.in_channels * self.scale**2 + self.in_channels

    def level_resolution(self, level: int) -> int:
        """Block-name resolution of a UNet level at the training size (64, 32, 16, 8 released)."""
        return self.train_resolution >> level

    @property
    def lr_multiple(self) -> int:
        """The multiple LR height and width must have (64 released).

        Every level halves the map (2**level) and every Swin layer tiles its map into windows, so
        LR % (2**level * window) == 0 for each Swin layer, and LR % 2**(levels-1) == 0.
        """
        multiple = 1 << (self.num_levels - 1)
        for spec in encoder_plan(self) + decoder_plan(self):
            if spec.swin_window:
                multiple = math.lcm(multiple, (1 << spec.level) * spec.swin_window)
        return multiple

    @property
    def hr_multiple(self) -> int:
        """The multiple the HR (network input x) height and width must have."""
        return self.lr_multiple * self.scale


@dataclass(frozen=True)
class BlockSpec:
    """One UNetBlock of the plan: its ``enc``/``dec`` key, channels and Swin window (0 = no Swin)."""

    name: str
    in_channels: int
    out_channels: int
    level: int
    up: bool = False
    down: bool = False
    swin_window: int = 0
    swin_shift: int = 0  # shift of the odd Swin blocks (0 when the window covers the whole map)
    takes_skip: bool = False


def _swin_geometry(cfg: GTASRConfig, res_param: int) -> tuple[int, int]:
    """Effective (window, shift) of a Swin layer built for ``res_param`` (reference BasicLayer rule).

    The reference clamps the window to the layer's nominal resolution and then disables the shift.
    """
    if res_param <= cfg.swin_window:
        return res_param, 0
    return cfg.swin_window, cfg.swin_window // 2


def encoder_plan(cfg: GTASRConfig) -> list[BlockSpec]:
    """Encoder UNetBlocks in key order (the first 3x3 conv ``{R}x{R}_conv`` is not a block)."""
    plan: list[BlockSpec] = []
    cout = cfg.model_channels
    for level, mult in enumerate(cfg.channel_mult):
        res = cfg.level_resolution(level)
        if level > 0:
            plan.append(BlockSpec(f"{res}x{res}_down", cout, cout, level, down=True))
        window, shift = _swin_geometry(cfg, res) if res in cfg.attn_resolutions else (0, 0)
        for idx in range(cfg.num_blocks):
            cin, cout = cout, cfg.model_channels * mult
            plan.append(
                BlockSpec(f"{res}x{res}_block{idx}", cin, cout, level, swin_window=window, swin_shift=shift)
            )
    return plan


def decoder_plan(cfg: GTASRConfig) -> list[BlockSpec]:
    """Decoder UNetBlocks in key order; ``takes_skip`` blocks concatenate one encoder output first."""
    skips = [cfg.model_channels] + [b.out_channels for b in encoder_plan(cfg)]
    # The reference builds every decoder Swin layer with the *lowest* level's resolution (a leaked loop
    # variable), which decides their window clamp.
    window, shift = _swin_geometry(cfg, cfg.level_resolution(cfg.num_levels - 1))
    plan: list[BlockSpec] = []
    cout = skips[-1]
    for level in reversed(range(cfg.num_levels)):
        res, mult = cfg.level_resolution(level), cfg.channel_mult[level]
        if level == cfg.num_levels - 1:
            plan.append(
                BlockSpec(f"{res}x{res}_in0", cout, cout, level, swin_window=window, swin_shift=shift)
            )
            plan.append(BlockSpec(f"{res}x{res}_in1", cout, cout, level))
        else:
            plan.append(BlockSpec(f"{res}x{res}_up", cout, cout, level, up=True))
        for idx in range(cfg.num_blocks + 1):
            cin, cout = cout + skips.pop(), cfg.model_channels * mult
            attn = idx == cfg.num_blocks and res in cfg.attn_resolutions
            plan.append(
                BlockSpec(
                    f"{res}x{res}_block{idx}",
                    cin,
                    cout,
                    level,
                    takes_skip=True,
                    swin_window=window if attn else 0,
                    swin_shift=shift if attn else 0,
                )
            )
    return plan


RELEASED = GTASRConfig()
"""The released GTASR / CTMSR network (171,518,529 parameters)."""

TINY = GTASRConfig(
    model_channels=32,
    channel_mult=(1, 2),
    num_blocks=1,
    train_resolution=16,
    attn_resolutions=(16, 8),
    channel_mult_emb=2,
    swin_embed_dim=32,
    swin_num_heads=2,
    swin_window=4,
)
"""A two-level, one-block network of the same architecture (~0.9 M parameters, LR multiple 8): no trained
weights exist; it is the size of CPU tests, benchmark smoke runs and the trainer's ``tiny`` network."""

PRESETS: dict[str, GTASRConfig] = {"released": RELEASED}
