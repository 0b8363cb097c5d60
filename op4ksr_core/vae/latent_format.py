"""Latent format of a VAE as seen by the diffusion model (channels, downscale, shift and scale).

Mirrors ComfyUI's ``LatentFormat`` idea as plain data: the transformer works on
``z_model = (z_vae - shift_factor) * scale_factor`` (docs/op4ksr.md §9.4). The numbers come from
``vae_config`` (the only place they are written).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import FLUX_F8, FLUX_F16, VaeConfig

__all__ = [
    "F16_LATENT",
    "F8_LATENT",
    "LatentFormat",
    "latent_format_for",
]


@dataclass(frozen=True)
class LatentFormat:
    """Latent layout and normalisation: ``latent_channels`` at 1/``downscale`` of the image size per side."""

    latent_channels: int
    downscale: int
    scale_factor: float
    shift_factor: float

    def __post_init__(self) -> None:
        if self.latent_channels < 1 or self.downscale < 1:
            raise ValueError(
                f"LatentFormat latent_channels={self.latent_channels}, downscale={self.downscale}: both must be >= 1"
            )
        if not self.scale_factor > 0:
            raise ValueError(f"LatentFormat.scale_factor={self.scale_factor}: must be > 0")

    def to_model(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latent -> model latent: ``(z - shift) * scale``."""
        return (z - self.shift_factor) * self.scale_factor

    def from_model(self, z: torch.Tensor) -> torch.Tensor:
        """Model latent -> VAE latent: ``z / scale + shift`` (inverse of :meth:`to_model`)."""
        return z / self.scale_factor + self.shift_factor

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """Latent (h, w) of an image of ``height`` x ``width`` pixels; both must be multiples of ``downscale``."""
        if height % self.downscale or width % self.downscale:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of {self.downscale} (the VAE downscale); "
                f"pad or crop to {height // self.downscale * self.downscale}x{width // self.downscale * self.downscale}"
            )
        return height // self.downscale, width // self.downscale


def latent_format_for(config: VaeConfig) -> LatentFormat:
    """The latent format implied by a VAE config."""
    return LatentFormat(
        latent_channels=config.latent_channels,
        downscale=config.downscale,
        scale_factor=config.scaling_factor,
        shift_factor=config.shift_factor,
    )


F16_LATENT = latent_format_for(FLUX_F16)
F8_LATENT = latent_format_for(FLUX_F8)
