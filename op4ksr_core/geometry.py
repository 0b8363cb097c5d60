"""Token-grid geometry: image pixels -> VAE latent -> transformer tokens.

A FLUX-style transformer sees an image as a grid of tokens. Each token covers
``vae_downscale * patch_size`` pixels per side: 8 * 2 = 16 px for the stock FLUX VAE (F8) and
16 * 2 = 32 px for the F16 VAE that OP4KSR uses (docs/op4ksr.md §2.2). Every geometry number in the
pack is derived here from those two factors, never written as a bare 8 or 16.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "F16_DOWNSCALE",
    "FLUX_F8_DOWNSCALE",
    "FLUX_PATCH_SIZE",
    "TokenGrid",
    "pixels_per_token",
    "token_grid",
]

# The three factors everything else is derived from. The VAE factors equal ``VaeConfig.downscale`` of the
# FLUX_F8 / FLUX_F16 presets (a test checks it); code holding a VAE or a transformer reads them from it.
FLUX_PATCH_SIZE = 2  # FLUX packs 2x2 latent cells into one token
FLUX_F8_DOWNSCALE = 8  # pixels per latent cell of the stock FLUX VAE
F16_DOWNSCALE = 16  # pixels per latent cell of OP4KSR's F16 VAE (docs/op4ksr.md §9)


def pixels_per_token(vae_downscale: int, patch_size: int = FLUX_PATCH_SIZE) -> int:
    """Pixels per token side, and the multiple an image side must have: ``vae_downscale * patch_size``."""
    for name, value in (("vae_downscale", vae_downscale), ("patch_size", patch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return vae_downscale * patch_size


@dataclass(frozen=True)
class TokenGrid:
    """Token grid of one image: ``height`` x ``width`` tokens, each ``pixels_per_token`` px square."""

    height: int
    width: int
    vae_downscale: int
    patch_size: int

    def __post_init__(self) -> None:
        for name in ("height", "width", "vae_downscale", "patch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TokenGrid.{name} must be a positive int, got {value!r}.")

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) in tokens, the order RoPE axes 1 and 2 use."""
        return (self.height, self.width)

    @property
    def pixels_per_token(self) -> int:
        """Side of the pixel square one token decodes to (VAE stride times patch size)."""
        return pixels_per_token(self.vae_downscale, self.patch_size)

    @property
    def latent_hw(self) -> tuple[int, int]:
        """(height, width) of the VAE latent before patchifying."""
        return (self.height * self.patch_size, self.width * self.patch_size)

    @property
    def pixel_hw(self) -> tuple[int, int]:
        """(height, width) of the image in pixels."""
        return (self.height * self.pixels_per_token, self.width * self.pixels_per_token)

    @property
    def num_tokens(self) -> int:
        """Number of image tokens, height * width."""
        return self.height * self.width


def token_grid(height_px: int, width_px: int, vae_downscale: int, patch_size: int) -> TokenGrid:
    """Token grid of a ``height_px`` x ``width_px`` image for a VAE stride and a patch size.

    Raises ValueError when a side is not a multiple of ``vae_downscale * patch_size``, naming
    the nearest valid sizes, because a silent crop or pad would shift every RoPE position.
    """
    step = pixels_per_token(vae_downscale, patch_size)
    sides = {"height_px": height_px, "width_px": width_px}
    for name, value in sides.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < step:
            raise ValueError(
                f"{name} must be an int >= {step} (vae_downscale {vae_downscale} x patch_size "
                f"{patch_size}), got {value!r}."
            )
        if value % step:
            lower, upper = (value // step) * step, (value // step + 1) * step
            raise ValueError(
                f"{name}={value} is not a multiple of {step} px (vae_downscale {vae_downscale} x "
                f"patch_size {patch_size}); resize or pad the image to {lower} or {upper} px."
            )
    return TokenGrid(height_px // step, width_px // step, vae_downscale, patch_size)
