"""One GTASR training step's losses (docs/gtasr.md §4-§6, Appendix A).

``stage1_losses``: L = L_CT + L_TA. ``stage2_losses``: L = L_CT + L_DTM+Stab + rect_weight L_Rect, with the
frozen copy D_phi. Randomness (CT index, noises, DTM level) comes from an explicit generator, so a step is
a function of its seed. The CT target uses the online weights in eval mode without gradient: that is the
released per-step copy theta- <- theta (target net in eval mode, so no dropout).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .config import GTASRTrainConfig
from .data import PairBatch
from .losses import PerceptualLoss, ct_loss, dtm_stab_loss, rect_loss, ta_loss
from .schedule import ct_index_bound, dtm_index_range, num_points_decreasing, power_schedule, q_sample

__all__ = ["Denoiser", "consistency_pair", "randn", "schedule_at", "stage1_losses", "stage2_losses"]

Denoiser = Callable[[Tensor, Tensor | float, Tensor], Tensor]
"""D(x [B, 3, H, W], sigma (float or [B]), lq [B, 3, h, w]) -> x^0 [B, 3, H, W] (a GTASRNet)."""


def schedule_at(config: GTASRTrainConfig, step: int) -> Tensor:
    """The float64 schedule s_0..s_{N-1} used at 1-based ``step`` (N decreasing in stage I)."""
    n = num_points_decreasing(step, config.total_steps, config.start_intervals, config.end_intervals)
    return power_schedule(n, config.power)


def randn(like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal noise shaped like ``like`` from ``generator`` (on the generator's device)."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


@torch.no_grad()
def _target(target_net: nn.Module, x: Tensor, sigma: float, lq: Tensor) -> Tensor:
    was_training = target_net.training
    target_net.eval()  # the released target copy runs in eval mode: no dropout
    try:
        return target_net(x, sigma, lq).detach()
    finally:
        target_net.train(was_training)


def consistency_pair(
    student: Denoiser,
    target_net: nn.Module,
    batch: PairBatch,
    schedule: Tensor,
    index_bound: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, int]:
    """(x^0 = D_theta(x_{n+1}, s_{n+1}), sg(D_theta-(x_n, s_n)), n) with one n ~ U{0..bound-1} per batch
    and one eps shared by x_n and x_{n+1} (docs/gtasr.md §4). At n = 0 the target is exactly x0 (D(x, 0) = x)."""
    n = int(torch.randint(index_bound, (1,), generator=generator, device=generator.device))
    noise = randn(batch.gt, generator)
    s_n, s_next = float(schedule[n]), float(schedule[n + 1])
    target = _target(target_net, q_sample(batch.gt, batch.lq_up, s_n, noise), s_n, batch.lq)
    pred = student(q_sample(batch.gt, batch.lq_up, s_next, noise), s_next, batch.lq)
    return pred, target, n


def _ct(config: GTASRTrainConfig, pred: Tensor, target: Tensor, perceptual: PerceptualLoss) -> Tensor:
    return ct_loss(
        pred, target, perceptual, config.lpips_weight, config.charbonnier_weight, config.charbonnier_eps
    )


def _consistency(
    student: Denoiser,
    target_net: nn.Module,
    batch: PairBatch,
    config: GTASRTrainConfig,
    schedule: Tensor,
    perceptual: PerceptualLoss,
    generator: torch.Generator,
) -> tuple[Tensor, int, Tensor]:
    """The consistency term both stages start with: (student prediction, level index n, mean L_CT)."""
    cap = config.ct_index_cap or None
    pred, target, n = consistency_pair(
        student, target_net, batch, schedule, ct_index_bound(len(schedule), cap), generator
    )
    return pred, n, _ct(config, pred, target, perceptual).mean()


def stage1_losses(
    student: Denoiser,
    target_net: nn.Module,
    batch: PairBatch,
    config: GTASRTrainConfig,
    step: int,
    perceptual: PerceptualLoss,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Stage I (CT + TA): {'total', 'ct', 'ta'} scalar means and 'ct_index' (n) for logging."""
    schedule = schedule_at(config, step)
    pred, n, l_ct = _consistency(student, target_net, batch, config, schedule, perceptual, generator)
    levels = schedule[1:-1].to(torch.float32)  # interior levels t = 1..N-2
    noises = [randn(batch.gt, generator) for _ in range(levels.numel())]
    l_ta = ta_loss(
        pred,
        batch.gt,
        batch.lq_up,
        levels,
        noises,
        perceptual,
        config.ta_weight,
        config.lpips_weight,
        config.charbonnier_weight,
        config.charbonnier_eps,
    ).mean()
    return {"total": l_ct + l_ta, "ct": l_ct, "ta": l_ta, "ct_index": torch.tensor(float(n))}


def stage2_losses(
    student: Denoiser,
    target_net: nn.Module,
    frozen: nn.Module,
    batch: PairBatch,
    config: GTASRTrainConfig,
    step: int,
    perceptual: PerceptualLoss,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Stage II (CT + DTM/Stab + Rect): {'total', 'ct', 'dtm_stab', 'rect'} scalar means."""
    schedule = schedule_at(config, step)
    pred, _, l_ct = _consistency(student, target_net, batch, config, schedule, perceptual, generator)

    # DTM level t per sample (released: t = 1 always, s_1 = 1/3), one eps shared by real and fake points.
    low, high = dtm_index_range(len(schedule), config.dtm_t_min, config.dtm_t_max)
    t = torch.randint(low, high, (batch.gt.shape[0],), generator=generator, device=generator.device)
    s_t = schedule.to(torch.float32)[t.cpu()].to(batch.gt.device)  # [B]
    noise = randn(batch.gt, generator)
    with torch.no_grad():
        frozen.eval()
        x0_fake = frozen(q_sample(pred.detach(), batch.lq_up, s_t, noise), s_t, batch.lq)
        x0_real = frozen(q_sample(batch.gt, batch.lq_up, s_t, noise), s_t, batch.lq)
    l_dtm = dtm_stab_loss(
        pred, batch.gt, x0_fake, x0_real, perceptual, config.dtm_scale, config.stab_coef, config.dtm_weighting
    ).mean()
    if config.rect_mode == "figure":  # method figure: Sobel of the student output, gradient flows
        l_rect = rect_loss(pred, batch.gt, perceptual).mean()
    else:  # released: Sobel of D_phi's no-grad estimate, a logged constant without gradient
        with torch.no_grad():
            l_rect = rect_loss(x0_fake, batch.gt, perceptual).mean()
    total = l_ct + l_dtm + config.rect_weight * l_rect
    return {"total": total, "ct": l_ct, "dtm_stab": l_dtm, "rect": l_rect}
