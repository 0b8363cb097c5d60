"""L_AP periodicity loss / score / map (srkit.periodicity): detection, invariances, optimisation."""

from __future__ import annotations

import pytest
import torch

from sr4k.op4ksr_core.geometry import F16_DOWNSCALE, FLUX_F8_DOWNSCALE, pixels_per_token
from sr4k.op4ksr_core.vae.config import FLUX_F8, FLUX_F16
from sr4k.srkit.periodicity import (
    DEFAULT_PERIOD_PX,
    PeriodicityConfig,
    autocorrelation,
    lattice_lags,
    periodicity_loss,
    periodicity_map,
    periodicity_score,
)
from synthetic_images import natural_image


def motif(h: int, w: int, period: int = DEFAULT_PERIOD_PX, amp: float = 0.03, seed: int = 9) -> torch.Tensor:
    """A random zero-mean period×period motif tiled over the image (a planted intra-token artifact)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(1, 3, period, period, generator=g)
    m = (m - m.mean()) / m.std() * amp
    return m.repeat(1, 1, h // period + 1, w // period + 1)[..., :h, :w]


def folded(x: torch.Tensor, period: int = DEFAULT_PERIOD_PX) -> torch.Tensor:
    """Projection onto period-T signals (mean over tiles): an independent measure of the periodic part."""
    b, c, h, w = x.shape
    x = x[..., : h // period * period, : w // period * period]
    f = x.reshape(b, c, h // period, period, w // period, period).mean(dim=(2, 4))
    return f - f.mean()


def test_grid_period_and_lags():
    assert DEFAULT_PERIOD_PX == pixels_per_token(F16_DOWNSCALE) == 32  # one F16 token
    assert FLUX_F16.downscale == F16_DOWNSCALE and FLUX_F8.downscale == FLUX_F8_DOWNSCALE
    lags = lattice_lags(32, 2)
    assert len(lags) == 12 and (0, 32) in lags and (64, -64) in lags and (0, 0) not in lags
    assert lattice_lags(16, 1, "axes") == [(0, 16), (16, 0)]


def test_autocorrelation_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 40, 48, generator=g, dtype=torch.float64)
    lag = 10
    acf = autocorrelation(x, lag, window=False)
    xc = x - x.mean(dim=(-2, -1), keepdim=True)
    zero = (xc**2).sum() / (40 * 48)
    for dy, dx in [(0, 3), (4, 0), (5, -7), (-10, 10), (2, 9)]:
        a = xc[..., max(0, -dy) : 40 - max(0, dy), max(0, -dx) : 48 - max(0, dx)]
        b = xc[..., max(0, dy) : 40 + min(0, dy), max(0, dx) : 48 + min(0, dx)]
        direct = (a * b).sum() / ((40 - abs(dy)) * (48 - abs(dx))) / zero
        assert abs(float(acf[0, lag + dy, lag + dx]) - float(direct)) < 1e-4
    assert acf.dtype == torch.float32 and float(acf[0, lag, lag]) == pytest.approx(1.0)


def test_planted_pattern_scores_high_natural_low():
    for h, w in [(192, 192), (256, 320)]:
        for seed in range(2):
            x = natural_image(h, w, seed)
            planted = (x + motif(h, w)).clamp(0, 1)
            s_nat, s_planted = float(periodicity_score(x)[0]), float(periodicity_score(planted)[0])
            assert s_nat < 0.02
            assert s_planted > 0.07 and s_planted > 5 * s_nat
            # A period-16 pattern (latent stride) also repeats at 32; an unrelated period does not respond.
            assert float(periodicity_score((x + motif(h, w, period=16)).clamp(0, 1))[0]) > 0.07
            assert float(periodicity_score(planted, 24)[0]) < 0.03


def test_score_is_contrast_invariant_and_roughly_size_free():
    x = (natural_image(192, 256, 1) + motif(192, 256)).clamp(0, 1)
    s = periodicity_score(x)
    torch.testing.assert_close(periodicity_score(0.3 + 0.5 * x), s, atol=1e-4, rtol=1e-3)
    # Stationary content (white noise + motif): the same energy fraction gives the same score at any size.
    g = torch.Generator().manual_seed(2)
    scores = []
    for n in (192, 384):
        img = 0.5 + 0.05 * torch.randn(1, 3, n, n, generator=g) + motif(n, n, amp=0.05)
        scores.append(float(periodicity_score(img)[0]))
    assert 0.3 < scores[0] < 0.7 and abs(scores[0] - scores[1]) < 0.1 * scores[1]


def _adam(x0: torch.Tensor, steps: int, **options: object) -> torch.Tensor:
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=2e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = periodicity_loss(x, **options).sum()
        loss.backward()
        assert torch.isfinite(x.grad).all()
        opt.step()
    return x.detach()


def test_adam_on_lap_removes_planted_pattern_and_leaves_natural_image():
    h = w = 128
    x = natural_image(h, w, 0)
    m = motif(h, w, amp=0.05)
    planted = (x + m).clamp(0, 1)
    # One batch: the loss is per sample and Adam per coordinate, so the two runs are independent.
    out, kept = _adam(torch.cat([planted, x]), 80, harmonics=1).split(1)
    before = float(periodicity_score(planted, harmonics=1)[0])
    assert before > 0.05
    assert float(periodicity_score(out, harmonics=1)[0]) < 0.2 * before
    # Independent check: the period-32 projection (relative to the clean image's) shrank.
    remaining = (folded(out) - folded(x)).norm() / (folded(planted) - folded(x)).norm()
    assert float(remaining) < 0.8
    assert float((kept - x).norm() / x.norm()) < 1e-3


def test_loss_domains_gradients_and_non_square():
    x = natural_image(160, 224, 3, batch=2)
    planted = (x + motif(160, 224)).clamp(0, 1)
    sr = planted.clone().requires_grad_(True)
    for domain in ("sr", "residual", "difference"):
        loss = periodicity_loss(sr, x, domain=domain)
        assert loss.shape == (2,) and bool((loss > 0.02).all())
        (g,) = torch.autograd.grad(loss.sum(), sr)
        assert torch.isfinite(g).all() and float(g.abs().max()) > 0
    # SR equal to HR: nothing in excess of the ground truth.
    assert float(periodicity_loss(x, x, domain="difference").max()) == 0.0
    flat = torch.full((1, 3, 160, 160), 0.5, requires_grad=True)
    (g,) = torch.autograd.grad(periodicity_loss(flat).sum(), flat, allow_unused=False)
    assert torch.isfinite(g).all()
    opts = PeriodicityConfig(periods=(16, 32), luma_only=True)
    assert periodicity_loss(planted, options=opts, margin=0.01).shape == (2,)
    # Half precision in, float32 maths inside.
    torch.testing.assert_close(
        periodicity_loss(planted.bfloat16()), periodicity_loss(planted), atol=0.02, rtol=0.1
    )


def test_options_validation_and_size_errors():
    with pytest.raises(ValueError, match="domain"):
        PeriodicityConfig(domain="latent")
    with pytest.raises(ValueError, match="periods"):
        PeriodicityConfig(periods=())
    with pytest.raises(ValueError, match="needs hr"):
        periodicity_loss(torch.rand(1, 3, 160, 160), domain="residual")
    with pytest.raises(ValueError, match="too small"):
        periodicity_score(torch.rand(1, 3, 100, 300))


def test_periodicity_map_localises_the_pattern():
    h, w = 192, 320
    x = natural_image(h, w, 4)
    m = motif(h, w, amp=0.05)
    m[..., w // 2 :] = 0  # artifact only in the left half
    hm = periodicity_map((x + m).clamp(0, 1)[0])
    assert hm.shape == (h, w)
    left, right = float(hm[:, : w // 2 - 64].mean()), float(hm[:, w // 2 + 64 :].mean())
    assert left > 0.05 and left > 4 * right


def test_cache_filled_in_inference_mode_still_supports_autograd():
    img = natural_image(144, 176, 6)
    with torch.inference_mode():
        first = periodicity_loss(img, harmonics=1, periods=(36,))  # a geometry no other test uses
    sr = img.clone().requires_grad_(True)
    loss = periodicity_loss(sr, harmonics=1, periods=(36,))
    (g,) = torch.autograd.grad(loss.sum() + (sr**2).sum(), sr)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(loss.detach(), first)


def test_the_old_options_name_still_imports_as_the_config() -> None:
    from sr4k.op4ksr_core import PeriodicityOptions as FromCore
    from sr4k.srkit.periodicity import PeriodicityOptions

    assert PeriodicityOptions is FromCore is PeriodicityConfig
    assert PeriodicityOptions(harmonics=1) == PeriodicityConfig(harmonics=1)
