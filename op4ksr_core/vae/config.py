"""Configuration of the FLUX.1 autoencoder and its F16 variant (Diffusion-4K "stride 2" VAE).

The F16 VAE is the FLUX.1 VAE with a stride-2 encoder ``conv_in`` and one extra nearest ×2 before the decoder's
``conv_out`` (docs/op4ksr.md §9.2). Every geometry number (downscale factor, latent channels, tail upscale) is
derived here from the config; no other module hard-codes 8, 16 or 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "DECODE_MODES",
    "DecodeMode",
    "FLUX_F16",
    "FLUX_F8",
    "PARTITIONED_STRIDE",
    "VAE_PRESETS",
    "VaeConfig",
    "check_decode_mode",
]


DecodeMode = Literal["partitioned", "aligned"]
DECODE_MODES: tuple[str, ...] = ("partitioned", "aligned")

# The reference's partitioned decoder only exists for a final ×2 (Diffusion-4K asserts stride == 2).
PARTITIONED_STRIDE = 2


@dataclass(frozen=True)
class VaeConfig:
    """Architecture and latent normalisation of a FLUX-style ``AutoencoderKL``.

    ``input_stride`` is the stride of the encoder's ``conv_in``; the decoder mirrors it with a final nearest
    upsample by the same factor (1 = the stock FLUX F8 VAE, 2 = the F16 VAE).
    """

    in_channels: int
    out_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    latent_channels: int
    norm_num_groups: int
    input_stride: int
    scaling_factor: float
    shift_factor: float
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "layers_per_block", "latent_channels", "norm_num_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"VaeConfig.{name}={value!r}: must be a positive int")
        blocks = self.block_out_channels
        if (
            not isinstance(blocks, tuple)
            or not blocks
            or not all(isinstance(c, int) and c > 0 for c in blocks)
        ):
            raise ValueError(
                f"VaeConfig.block_out_channels={blocks!r}: must be a non-empty tuple of positive ints "
                "(FLUX: (128, 256, 512, 512))"
            )
        bad = [c for c in blocks if c % self.norm_num_groups]
        if bad:
            raise ValueError(
                f"VaeConfig.block_out_channels {bad} are not divisible by norm_num_groups={self.norm_num_groups}; "
                "GroupNorm needs channels = k * groups"
            )
        if self.input_stride not in (1, PARTITIONED_STRIDE):
            raise ValueError(
                f"VaeConfig.input_stride={self.input_stride!r}: use 1 (FLUX F8 VAE) or 2 (F16 VAE)"
            )
        for name in ("scaling_factor", "shift_factor", "norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"VaeConfig.{name}={value!r}: must be a finite number")
        if self.scaling_factor <= 0 or self.norm_eps <= 0:
            raise ValueError(
                f"VaeConfig scaling_factor={self.scaling_factor}, norm_eps={self.norm_eps}: both must be > 0"
            )

    @property
    def num_levels(self) -> int:
        """Resolution levels: one per entry of ``block_out_channels``."""
        return len(self.block_out_channels)

    @property
    def downscale(self) -> int:
        """Pixels per latent cell per side: the ×2 downsamples between levels times the input stride."""
        return 2 ** (self.num_levels - 1) * self.input_stride

    @property
    def tail_upscale(self) -> int:
        """Factor of the decoder's final nearest upsample (mirrors the encoder input stride)."""
        return self.input_stride

    @property
    def moment_channels(self) -> int:
        """Encoder output channels: mean and log-variance of the diagonal Gaussian posterior."""
        return 2 * self.latent_channels


# The FLUX.1 VAE (black-forest-labs/FLUX.1-dev `vae/config.json`; BFL `ae.safetensors`), encoder stride 2.
# scaling/shift are the FLUX values, reused unchanged by the F16 VAE (docs/op4ksr.md §9.4). They are written
# here only; every other module reads them from a config or from latent_format.F16_LATENT.
FLUX_F16 = VaeConfig(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=16,
    norm_num_groups=32,
    input_stride=2,
    scaling_factor=0.3611,
    shift_factor=0.1159,
)

# The stock FLUX F8 VAE: same weights, stride-1 conv_in and no final upsample.
FLUX_F8 = replace(FLUX_F16, input_stride=1)

VAE_PRESETS: dict[str, VaeConfig] = {"flux_f16": FLUX_F16, "flux_f8": FLUX_F8}


def check_decode_mode(decode_mode: str, config: VaeConfig) -> DecodeMode:
    """Validate ``decode_mode`` for ``config``; returns it typed. See docs/op4ksr.md §9.3."""
    if decode_mode not in DECODE_MODES:
        raise ValueError(
            f"decode_mode={decode_mode!r}: use 'partitioned' (Diffusion-4K default; SC-VAE and decoders "
            "fine-tuned with it) or 'aligned' (plain nearest x2 then conv_out; raw FLUX VAE weights)"
        )
    if decode_mode == "partitioned" and config.tail_upscale != PARTITIONED_STRIDE:
        raise ValueError(
            f"decode_mode='partitioned' needs input_stride={PARTITIONED_STRIDE} (F16), got "
            f"input_stride={config.input_stride}; use decode_mode='aligned' for the F8 VAE"
        )
    return decode_mode  # type: ignore[return-value]
