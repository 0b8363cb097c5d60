"""t* calibration: the flow time at which the LR latent is as far from the HR latent as the flow path is.

OMGSR-F's "mid-timestep" rule (docs/op4ksr.md Appendix D), in closed form. With model-space latents z (F16 VAE
posterior mean, shifted and scaled), z_HR of each HR image and z_LR of its LR bicubic-upsampled back to the HR
size, the rectified-flow point x_sigma = (1 - sigma) z_HR + sigma eps (eps ~ N(0, 1), independent of z_HR) is,
per latent value, at expected squared distance

    E (x_sigma - z_HR)^2 = sigma^2 E (eps - z_HR)^2 = sigma^2 (1 + z_HR^2)

from z_HR. Setting its mean equal to the LR latent's mean squared distance gives

    t* = sqrt( mean((z_LR - z_HR)^2) / (1 + mean(z_HR^2)) ),

the means over all latent values of all images (pooled, not per image), clamped to [0.05, 0.95]. Feeding the
LR latent directly at that t* ("direct" input) puts it where the model expects inputs that far from clean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["T_STAR_RANGE", "TStarStats", "accumulate", "tstar_closed_form", "calibrate_tstar"]

T_STAR_RANGE: tuple[float, float] = (0.05, 0.95)


@dataclass(frozen=True)
class TStarStats:
    """The calibration result: t* (clamped), its unclamped value, and the pooled statistics behind it."""

    t_star: float
    t_star_unclamped: float
    images: int
    values: int  # latent values pooled
    lr_mse: float  # mean((z_LR - z_HR)^2)
    hr_power: float  # mean(z_HR^2)

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def tstar_closed_form(
    lr_mse: float, hr_power: float, clamp: tuple[float, float] = T_STAR_RANGE
) -> tuple[float, float]:
    """``(clamped, unclamped)`` t* = sqrt(lr_mse / (1 + hr_power)) (module docstring)."""
    if lr_mse < 0 or hr_power < 0 or not (math.isfinite(lr_mse) and math.isfinite(hr_power)):
        raise ValueError(f"need finite lr_mse >= 0 and hr_power >= 0, got {lr_mse}, {hr_power}")
    raw = math.sqrt(lr_mse / (1.0 + hr_power))
    return min(max(raw, clamp[0]), clamp[1]), raw


def accumulate(z_lr: torch.Tensor, z_hr: torch.Tensor) -> tuple[float, float, int]:
    """Float64 sums ``(sum (z_LR - z_HR)^2, sum z_HR^2, count)`` of one pair of latents (any equal shapes)."""
    if z_lr.shape != z_hr.shape:
        raise ValueError(f"LR and HR latents differ in shape: {tuple(z_lr.shape)} vs {tuple(z_hr.shape)}")
    lr, hr = z_lr.detach().double(), z_hr.detach().double()
    return float(((lr - hr) ** 2).sum()), float((hr**2).sum()), hr.numel()


def calibrate_tstar(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> TStarStats:
    """t* over ``(z_LR, z_HR)`` model-space latent pairs, one per image, pooling every latent value."""
    diff = power = 0.0
    count = images = 0
    for z_lr, z_hr in pairs:
        d, p, n = accumulate(z_lr, z_hr)
        diff, power, count, images = diff + d, power + p, count + n, images + 1
    if not count:
        raise ValueError("no image pairs to calibrate t* on")
    mse, hr_power = diff / count, power / count
    t_star, raw = tstar_closed_form(mse, hr_power)
    return TStarStats(
        t_star=t_star, t_star_unclamped=raw, images=images, values=count, lr_mse=mse, hr_power=hr_power
    )
