"""GTASR training losses as pure functions returning per-sample values [B] (docs/gtasr.md §4-§6).

The perceptual distance is injected (``PerceptualLoss``: two [B, 3, H, W] images in [-1, 1] -> [B]); the
released code uses LPIPS-VGG (see ``perceptual.py``). The trainer sums weight_i * loss_i.mean().
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .schedule import q_sample

__all__ = [
    "DTM_WEIGHTINGS",
    "PerceptualLoss",
    "charbonnier",
    "ct_loss",
    "dtm_stab_loss",
    "dtm_stab_target",
    "dtm_weight",
    "rect_loss",
    "sobel_magnitude",
    "ta_loss",
]

PerceptualLoss = Callable[[Tensor, Tensor], Tensor]
"""(a [B, C, H, W], b [B, C, H, W]) -> per-sample distance [B]; differentiable in both arguments."""

DTM_WEIGHTINGS = ("improved", "simple")
_SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
_SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def _per_sample_mean(x: Tensor) -> Tensor:
    return x.flatten(1).mean(dim=1)


def charbonnier(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Charbonnier distance mean_CHW sqrt((a - b)^2 + eps) per sample [B] (released eps 1e-12)."""
    return _per_sample_mean(torch.sqrt((a - b) ** 2 + eps))


def sobel_magnitude(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-channel Sobel gradient magnitude sqrt(Gx^2 + Gy^2 + eps), [B, C, H, W] -> [B, C, H, W].

    Depthwise 3x3 cross-correlation with zero padding 1 (released ``sobel_edge_map``, docs/gtasr.md §6);
    kx = [[1,0,-1],[2,0,-2],[1,0,-1]], ky = kx^T. A ramp a*col + b*row gives 8 sqrt(a^2 + b^2) inside.
    """
    c = x.shape[1]
    kernels = torch.tensor((_SOBEL_X, _SOBEL_Y), dtype=x.dtype, device=x.device)  # [2, 3, 3]
    weight = kernels[:, None].repeat(c, 1, 1, 1)  # [2C, 1, 3, 3]: (gx, gy) for each channel
    grads = F.conv2d(x.repeat_interleave(2, dim=1), weight, padding=1, groups=2 * c)  # [B, 2C, H, W]
    gx, gy = grads[:, 0::2], grads[:, 1::2]
    return torch.sqrt(gx**2 + gy**2 + eps)


def ct_loss(
    pred: Tensor,
    target: Tensor,
    perceptual: PerceptualLoss,
    lpips_weight: float = 0.5,
    charbonnier_weight: float = 0.5,
    eps: float = 1e-12,
) -> Tensor:
    """Consistency-training loss per sample [B] (docs/gtasr.md §4): 0.5 LPIPS(x^0, tgt) + 0.5 Charbonnier.

    ``pred`` = D_theta(x_{n+1}, s_{n+1}) with gradient; ``target`` = sg(D_theta-(x_n, s_n)) (detached here).
    """
    target = target.detach()
    loss = charbonnier_weight * charbonnier(pred, target, eps)
    if lpips_weight:
        loss = loss + lpips_weight * perceptual(pred, target)
    return loss


def ta_loss(
    pred_x0: Tensor,
    x0: Tensor,
    y: Tensor,
    levels: Tensor,
    noises: Sequence[Tensor],
    perceptual: PerceptualLoss,
    weight: float = 0.5,
    lpips_weight: float = 0.5,
    charbonnier_weight: float = 0.5,
    eps: float = 1e-12,
) -> Tensor:
    """Trajectory Alignment per sample [B] (docs/gtasr.md §5, stage I).

    L_TA = weight * sum_t [lpips_w P(x_t, z_t) + charb_w C(x_t, z_t)] over the interior ``levels`` s_t
    ([L] values), with x_t = q(x0, y, s_t, eps_t), z_t = q(x^0, y, s_t, eps_t) and one fresh ``noises[t]``
    shared by the pair. Gradient flows through ``pred_x0`` only. Since z_t - x_t = (1 - s_t)(x^0 - x0),
    the Charbonnier part is a reconstruction loss weighted by (1 - s_t).
    """
    if len(noises) != levels.numel():
        raise ValueError(f"ta_loss needs one noise tensor per level: {len(noises)} for {levels.numel()}")
    x0, y = x0.detach(), y.detach()
    total = pred_x0.new_zeros(pred_x0.shape[0])
    for s, noise in zip(levels.tolist(), noises, strict=True):
        x_t = q_sample(x0, y, s, noise)
        z_t = q_sample(pred_x0, y, s, noise)
        term = charbonnier_weight * charbonnier(x_t, z_t, eps)
        if lpips_weight:
            term = term + lpips_weight * perceptual(x_t, z_t)
        total = total + term
    return weight * total


def dtm_stab_target(x0_fake: Tensor, x0_real: Tensor, stab_coef: float = 0.2, eps: float = 1e-12) -> Tensor:
    """Delta_mix = (x0_fake - x0_real) + stab_coef (S(x0_fake) - S(x0_real)): CTMSR's DTM direction plus
    GTASR's "Stab" edge-domain difference (docs/gtasr.md §6; 0.2 hard-coded in the release). Detached."""
    x0_fake, x0_real = x0_fake.detach(), x0_real.detach()
    delta = x0_fake - x0_real
    if stab_coef:
        delta = delta + stab_coef * (sobel_magnitude(x0_fake, eps) - sobel_magnitude(x0_real, eps))
    return delta


def dtm_weight(pred_x0: Tensor, x0: Tensor, weighting: str = "improved", floor: float = 1e-8) -> Tensor:
    """Per-sample DTM weight [B] (released ``weight_type``): 'improved' = 1 / mean_CHW |sg(x^0) - x0|,
    'simple' = 1. The mean is floored at ``floor`` so that x^0 == x0 gives a finite weight (our guard;
    the release would divide by zero there)."""
    if weighting == "simple":
        return pred_x0.new_ones(pred_x0.shape[0])
    if weighting != "improved":
        raise ValueError(f"unknown DTM weighting {weighting!r}; choose from {DTM_WEIGHTINGS}")
    return 1.0 / _per_sample_mean((pred_x0.detach() - x0).abs()).clamp_min(floor)


def dtm_stab_loss(
    pred_x0: Tensor,
    x0: Tensor,
    x0_fake: Tensor,
    x0_real: Tensor,
    perceptual: PerceptualLoss,
    scale: float = 0.8,
    stab_coef: float = 0.2,
    weighting: str = "improved",
    eps: float = 1e-12,
) -> Tensor:
    """DTM + Stab per sample [B] (docs/gtasr.md §6): scale * w * P(x^0, sg(x^0 - Delta_mix)).

    ``x0_fake`` = D_phi(q(sg(x^0), y, s_t, eps)), ``x0_real`` = D_phi(q(x0, y, s_t, eps)) from the frozen
    copy; scale 0.8 = 0.5 x 1.6 (hard-coded in the release). Gradient flows through ``pred_x0`` only.
    """
    target = (pred_x0.detach() - dtm_stab_target(x0_fake, x0_real, stab_coef, eps)).detach()
    return scale * dtm_weight(pred_x0, x0, weighting) * perceptual(pred_x0, target)


def rect_loss(edge_source: Tensor, x0: Tensor, perceptual: PerceptualLoss, eps: float = 1e-12) -> Tensor:
    """ "Rect" per sample [B] (docs/gtasr.md §6): P(S(edge_source), S(x0)) between Sobel magnitude maps.

    As released ``edge_source`` = x0_fake (computed without gradient: the term is logged but gives no
    gradient); as the method figure draws it ``edge_source`` = the student output x^0 (gradient flows).
    """
    return perceptual(sobel_magnitude(edge_source, eps), sobel_magnitude(x0.detach(), eps))
