"""GTASR trainer maths against closed forms (docs/gtasr.md §3-§6, Appendix B)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from sr4k.gtasr_core import build
from sr4k.training.gtasr import lr_at
from sr4k.training.gtasr.config import PRESETS, TINY_NET
from sr4k.training.gtasr.data import PairBatch
from sr4k.training.gtasr.losses import (
    charbonnier,
    ct_loss,
    dtm_stab_loss,
    dtm_stab_target,
    rect_loss,
    sobel_magnitude,
    ta_loss,
)
from sr4k.training.gtasr.perceptual import standin_perceptual
from sr4k.training.gtasr.schedule import (
    dtm_index_range,
    num_points_decreasing,
    power_schedule,
    q_sample,
    ta_reconstruction_weights,
)
from sr4k.training.gtasr.steps import consistency_pair, stage2_losses


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny network is latency-bound: one thread avoids oversubscribing shared 2-core runners."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def zero_perceptual(a: Tensor, b: Tensor) -> Tensor:
    return a.new_zeros(a.shape[0])


def half_sq(a: Tensor, b: Tensor) -> Tensor:
    """0.5 * ||a - b||^2 per sample: its gradient in a is (a - b)."""
    return 0.5 * ((a - b) ** 2).flatten(1).sum(1)


# ---------------------------------------------------------------------------------------------- schedules


def test_schedule_values_match_the_released_tables():
    torch.testing.assert_close(
        power_schedule(5, 2.5),
        torch.tensor([0, 0.03125, 0.1767767, 0.4871393, 1], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        power_schedule(4, 2.5),
        torch.tensor([0, 0.0641500, 0.3628874, 1], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        power_schedule(4, 1.0), torch.tensor([0, 1 / 3, 2 / 3, 1], dtype=torch.float64)
    )
    for n in range(2, 12):
        for p in (0.5, 1.0, 2.5, 7.0):
            s = power_schedule(n, p)
            assert s[0] == 0 and s[-1] == 1
            assert bool((s[1:] > s[:-1]).all()), (n, p)
            # closed form (i / (N-1))^p
            torch.testing.assert_close(s, (torch.arange(n, dtype=torch.float64) / (n - 1)) ** p)


def test_step_count_decreases_at_half_of_training():
    total = 500_000
    assert [num_points_decreasing(k, total, 4, 3) for k in (1, 249_999, 250_000, 400_000, total)] == [
        5,
        5,
        4,
        4,
        4,
    ]
    counts = [num_points_decreasing(k, 80, 4, 3) for k in range(1, 81)]
    assert counts == [5] * 39 + [4] * 41
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    # a longer decrease 6 -> 3 over 400 steps: one point less every 100 steps
    assert [num_points_decreasing(k, 400, 6, 3) for k in (99, 100, 200, 300, 399)] == [7, 6, 5, 4, 4]
    assert num_points_decreasing(123, 2000, 3, 3) == 4  # stage II: fixed 4 points
    with pytest.raises(ValueError, match="start_intervals >= end_intervals"):
        num_points_decreasing(1, 10, 3, 4)


def test_dtm_level_is_fixed_at_one_third_as_released():
    assert dtm_index_range(4, 0.1, 0.5) == (1, 2)
    with pytest.raises(ValueError, match="no DTM level"):
        dtm_index_range(4, 0.3, 0.4)


def test_forward_process_endpoints():
    g = torch.Generator().manual_seed(0)
    x0, y, eps = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    assert torch.equal(q_sample(x0, y, 0.0, eps), x0)
    torch.testing.assert_close(q_sample(x0, y, 1.0, eps), y + eps)
    s = torch.tensor([0.25, 0.5])
    torch.testing.assert_close(q_sample(x0, y, s, eps)[1], x0[1] + 0.5 * (y[1] - x0[1]) + 0.5 * eps[1])


def test_lr_follows_multisteplr_in_basicsr_order():
    cfg = PRESETS["stage1"]
    assert lr_at(1, cfg) == 5e-5 and lr_at(50_000, cfg) == 5e-5 and lr_at(50_001, cfg) == 2.5e-5
    assert lr_at(2000, PRESETS["stage2"]) == 5e-5


# ------------------------------------------------------------------------------------------------- losses


def test_charbonnier_and_ct_closed_form():
    g = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
    )
    torch.testing.assert_close(charbonnier(a, b, eps=1e-3), ((a - b) ** 2 + 1e-3).sqrt().mean(dim=(1, 2, 3)))
    b.requires_grad_(True)
    loss = ct_loss(a, b, standin_perceptual, 0.5, 0.5, 1e-12)
    expected = 0.5 * standin_perceptual(a, b.detach()) + 0.5 * (a - b.detach()).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss, expected)
    assert not loss.requires_grad  # the CT target is stop-gradient


def test_ta_charbonnier_part_is_reconstruction_weighted_by_one_minus_s():
    """docs/gtasr.md §5: z_t - x_t = (1 - s_t)(x^0 - x0), so TA's pixel part = sum_t (1 - s_t) |x^0 - x0|."""
    g = torch.Generator().manual_seed(2)
    pred, x0, y = (torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    for n in (5, 4):
        levels = power_schedule(n, 2.5)[1:-1]
        noises = [torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(n - 2)]
        got = ta_loss(
            pred,
            x0,
            y,
            levels,
            noises,
            zero_perceptual,
            weight=0.5,
            lpips_weight=0.5,
            charbonnier_weight=0.5,
            eps=1e-300,
        )
        w = ta_reconstruction_weights(power_schedule(n, 2.5))
        expected = 0.5 * 0.5 * w.sum() * (pred - x0).abs().mean(dim=(1, 2, 3))
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        ta_reconstruction_weights(power_schedule(5, 2.5)),
        torch.tensor([0.96875, 0.8232233, 0.5128607], dtype=torch.float64),
    )


def test_ta_lpips_part_sees_noisy_projections_and_gradient_only_through_prediction():
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(2, 3, 8, 8, generator=g).requires_grad_(True)
    x0 = torch.randn(2, 3, 8, 8, generator=g).requires_grad_(True)
    y, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    levels = torch.tensor([0.25])
    seen = []

    def recorder(a: Tensor, b: Tensor) -> Tensor:
        seen.append((a.detach(), b.detach()))
        return (a - b).abs().flatten(1).mean(1)

    loss = ta_loss(pred, x0, y, levels, [eps], recorder, weight=1.0, lpips_weight=1.0, charbonnier_weight=0.0)
    torch.testing.assert_close(seen[0][0], x0.detach() + 0.25 * (y - x0.detach()) + 0.25 * eps)
    torch.testing.assert_close(seen[0][1], pred.detach() + 0.25 * (y - pred.detach()) + 0.25 * eps)
    torch.testing.assert_close(loss, 0.75 * (pred - x0).detach().abs().flatten(1).mean(1))
    loss.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0 and x0.grad is None


def test_sobel_of_a_ramp():
    a, b = 0.3, -0.7
    rows, cols = torch.meshgrid(torch.arange(12.0), torch.arange(10.0), indexing="ij")
    ramp = (a * cols + b * rows).expand(2, 3, 12, 10)
    edge = sobel_magnitude(ramp)
    inner = edge[..., 1:-1, 1:-1]
    torch.testing.assert_close(inner, torch.full_like(inner, 8 * math.hypot(a, b)))
    flat = sobel_magnitude(torch.full((1, 1, 5, 5), 0.4))
    assert flat[..., 2, 2].item() == pytest.approx(1e-6, rel=1e-3)  # ~sqrt(eps) in a constant image (fp32)


def test_dtm_stab_gradient_is_the_mixed_target_direction():
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64).requires_grad_(True)
    x0, fake, real = (torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    delta = dtm_stab_target(fake, real, 0.2)
    torch.testing.assert_close(delta, fake - real + 0.2 * (sobel_magnitude(fake) - sobel_magnitude(real)))
    loss = dtm_stab_loss(pred, x0, fake, real, half_sq, scale=0.8, stab_coef=0.2)
    w = 1 / (pred.detach() - x0).abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(loss, 0.8 * w * 0.5 * (delta**2).flatten(1).sum(1))
    loss.sum().backward()
    torch.testing.assert_close(pred.grad, 0.8 * w[:, None, None, None] * delta)


def test_rect_is_lpips_between_sobel_maps():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    torch.testing.assert_close(rect_loss(a, b, half_sq), half_sq(sobel_magnitude(a), sobel_magnitude(b)))
    assert torch.equal(rect_loss(b, b, standin_perceptual), torch.zeros(2))


# ------------------------------------------------------------------------------ step functions, tiny net


class Oracle(nn.Module):
    """A 'denoiser' that always answers the ground truth (a perfect D_phi)."""

    def __init__(self, gt: Tensor) -> None:
        super().__init__()
        self.gt = gt

    def forward(self, x: Tensor, sigma: Tensor | float, lq: Tensor) -> Tensor:
        return self.gt.clone()


def _batch(seed: int = 0) -> PairBatch:
    g = torch.Generator().manual_seed(seed)
    lq = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    up = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bicubic")
    return PairBatch(lq, up, (up + 0.1 * torch.randn(2, 3, 32, 32, generator=g)).clamp(-1, 1))


def test_ct_target_at_the_boundary_is_exactly_the_ground_truth():
    torch.manual_seed(0)
    net = build(TINY_NET).train()
    batch = _batch()
    calls = []

    def student(x: Tensor, s: Tensor | float, lq: Tensor) -> Tensor:
        calls.append((x.detach(), s))
        return net(x, s, lq)

    schedule = power_schedule(5, 2.5)
    pred, target, n = consistency_pair(student, net, batch, schedule, 1, torch.Generator().manual_seed(1))
    assert n == 0 and torch.equal(target, batch.gt)  # D(x, sigma=0) = x, and x_0 = x0
    assert net.training  # the target ran in eval mode and the mode came back
    ((x_next, s_next),) = calls
    assert s_next == float(schedule[1]) and pred.requires_grad
    # one eps for both points: solve it back from x_1
    eps = (x_next - batch.gt) / s_next - (batch.lq_up - batch.gt)
    assert eps.std().item() == pytest.approx(1.0, abs=0.15)


def test_stab_and_rect_vanish_when_the_student_equals_the_ground_truth():
    torch.manual_seed(0)
    batch = _batch(1)
    target_net = build(TINY_NET)
    gt_param = nn.Parameter(batch.gt.clone())

    def perfect_student(x: Tensor, s: Tensor | float, lq: Tensor) -> Tensor:
        return gt_param * 1.0

    cfg = PRESETS["tiny_stage2"]
    frozen = build(TINY_NET)  # a real (random) D_phi: fake and real points coincide, so Delta_mix = 0
    gen = torch.Generator().manual_seed(3)
    figure = stage2_losses(
        perfect_student,
        target_net,
        frozen,
        batch,
        _replace(cfg, rect_mode="figure"),
        1,
        standin_perceptual,
        gen,
    )
    assert figure["dtm_stab"].item() == 0.0 and figure["rect"].item() == 0.0
    released = stage2_losses(
        perfect_student,
        target_net,
        Oracle(batch.gt),
        batch,
        cfg,
        1,
        standin_perceptual,
        torch.Generator().manual_seed(3),
    )
    assert released["dtm_stab"].item() == 0.0 and released["rect"].item() == 0.0


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_rect_modes_released_has_no_gradient_figure_has():
    torch.manual_seed(0)
    student, frozen = build(TINY_NET).train(), build(TINY_NET)
    batch = _batch(2)
    out = {}
    for mode in ("released", "figure"):
        cfg = _replace(PRESETS["tiny_stage2"], rect_mode=mode)
        torch.manual_seed(1)  # same dropout masks in both modes
        out[mode] = stage2_losses(
            student, student, frozen, batch, cfg, 1, standin_perceptual, torch.Generator().manual_seed(7)
        )
    assert not out["released"]["rect"].requires_grad
    assert out["figure"]["rect"].requires_grad
    grads = torch.autograd.grad(out["figure"]["rect"], [student.model.conv_last.weight])
    assert grads[0].abs().sum() > 0
    # both modes draw the same noises, so the other terms agree
    torch.testing.assert_close(out["released"]["dtm_stab"], out["figure"]["dtm_stab"])
