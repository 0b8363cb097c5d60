"""RFR modes ``yarn`` and ``dype`` against a closed form re-derived here, plus the embedders' tables.

The closed form below is written from the definitions (YaRN's NTK-by-parts ramps per image axis, DyPE's
kappa = t**2 on the ramps, rotary magnitude 1 + 0.1 ln s) in plain Python floats, without calling the
code under test; the tables are checked against cos/sin of position x frequency.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.transformers.transformer_flux import FluxPosEmbed

from comfy_tree import import_comfy
from sr4k.op4ksr_core.embedder import RFREmbedder, RFRPosEmbed
from sr4k.op4ksr_core.rfr import RFR_PRESETS, RFRConfig, rescaled_thetas
from sr4k.op4ksr_core.rfr_spectra import axis_spectra
from sr4k.op4ksr_core.rope import flux_ids
from sr4k.op4ksr_core.rope_yarn import dype_kappa, yarn_frequencies, yarn_mscale

THETA, AXES, DIM = 10_000.0, [16, 56, 56], 128


def closed_form(d: int, theta: float, length: float, ref: float, t: float = 1.0) -> tuple[list[float], float]:
    """Per-band frequencies and the rotary magnitude, from the definitions.

    Band k turns ``ref * theta**(-2k/d) / (2 pi)`` times over the reference length; the band turning
    exactly n times is ``k = (d/2) * log_theta(ref / (2 pi n))``. Ramps: lo = floor(k(fast)),
    hi = ceil(k(slow)), clamped to [0, d/2].
    """
    s = max(1.0, length / ref)
    base = [theta ** (-2 * k / d) for k in range(d // 2)]
    if s == 1.0:
        return base, 1.0
    kappa = min(max(t, 0.0), 1.0) ** 2
    ntk_base = theta * s ** (d / (d - 2))
    ntk = [ntk_base ** (-2 * k / d) for k in range(d // 2)]
    lin = [b / s for b in base]

    def band(n: float) -> float:
        return (
            math.inf
            if n == 0
            else (d / 2) * (math.log(ref) - math.log(2 * math.pi) - math.log(n)) / math.log(theta)
        )

    def ramp(fast: float, slow: float) -> list[float]:
        lo = d // 2 if band(fast) >= d // 2 else max(0, math.floor(band(fast)))
        hi = d // 2 if band(slow) >= d // 2 else max(0, math.ceil(band(slow)))
        width = (hi - lo) or 0.001
        return [min(1.0, max(0.0, (k - lo) / width)) for k in range(d // 2)]

    r1 = ramp(1.25 * kappa, 0.75 * kappa)
    mid = [lin[k] * r1[k] + ntk[k] * (1 - r1[k]) for k in range(d // 2)]
    r2 = ramp(16 * kappa, 2 * kappa)
    return [mid[k] * r2[k] + base[k] * (1 - r2[k]) for k in range(d // 2)], 1 + 0.1 * math.log(s)


@pytest.mark.parametrize("length", [64, 96, 128, 256, 333])
@pytest.mark.parametrize("t", [1.0, 0.8, 0.5, 0.3, 0.1, 0.02, 0.0])
def test_frequencies_equal_the_closed_form(length: int, t: float) -> None:
    for d, ref in ((56, 64.0), (56, 32.0), (16, 8.0)):
        want, mscale = closed_form(d, THETA, length, ref, t)
        got = yarn_frequencies(d, THETA, max(1.0, length / ref), ref, kappa=dype_kappa(t))
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)
        assert yarn_mscale(max(1.0, length / ref)) == pytest.approx(mscale, rel=1e-15)


def test_hand_computed_anchors_at_4k_with_f16() -> None:
    """4096 px, F16: 128 tokens against 64, s = 2. Ramps (6, 8) for beta and (0, 5) for gamma."""
    base = [THETA ** (-2 * k / 56) for k in range(28)]
    ntk = [(THETA * 2 ** (56 / 54)) ** (-2 * k / 56) for k in range(28)]
    got = yarn_frequencies(56, THETA, 2.0, 64.0).tolist()
    assert got[0] == pytest.approx(base[0], rel=1e-15)  # fastest band untouched
    assert got[6] == pytest.approx(ntk[6], rel=1e-12)  # NTK: start of the beta ramp, past the gamma ramp
    assert got[7] == pytest.approx(0.5 * base[7] / 2 + 0.5 * ntk[7], rel=1e-12)  # half way on the beta ramp
    assert all(got[k] == pytest.approx(base[k] / 2, rel=1e-12) for k in range(8, 28))  # interpolated
    assert got[3] == pytest.approx(0.6 * ntk[3] + 0.4 * base[3], rel=1e-12)  # 3/5 along the gamma ramp
    assert yarn_mscale(2.0) == pytest.approx(1.0693147180559945, rel=1e-15)


def test_dype_grows_with_sigma_and_vanishes_at_zero() -> None:
    base = yarn_frequencies(56, THETA, 1.0, 64.0)
    ratios = [
        (yarn_frequencies(56, THETA, 2.0, 64.0, dype_kappa(t)) / base) for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    torch.testing.assert_close(ratios[0], torch.ones(28, dtype=torch.float64), rtol=0, atol=0)
    for weaker, stronger in zip(ratios, ratios[1:], strict=False):
        assert torch.all(stronger <= weaker + 1e-15)  # more rescaling (lower frequency) at higher sigma
        assert (weaker - stronger).max() > 0.02
    torch.testing.assert_close(ratios[-1], yarn_frequencies(56, THETA, 2.0, 64.0) / base, rtol=0, atol=0)
    assert dype_kappa(0.5) == 0.25 and dype_kappa(1.7) == 1.0 and dype_kappa(-1.0) == 0.0


def test_spectra_scale_only_the_spatial_axes_per_axis_length() -> None:
    spectra = axis_spectra(RFRConfig(mode="yarn"), AXES, THETA, (96.0, 256.0))
    assert spectra[0].magnitude == 1.0
    assert spectra[1].magnitude == pytest.approx(1 + 0.1 * math.log(1.5))
    assert spectra[2].magnitude == pytest.approx(1 + 0.1 * math.log(4.0))
    want_rows, _ = closed_form(56, THETA, 96, 64)
    torch.testing.assert_close(
        spectra[1].omega, torch.tensor(want_rows, dtype=torch.float64), rtol=1e-12, atol=0
    )
    dype = axis_spectra(RFRConfig(mode="dype"), AXES, THETA, (96.0, 256.0), sigma=0.4)
    want_cols, _ = closed_form(56, THETA, 256, 64, 0.4)
    torch.testing.assert_close(
        dype[2].omega, torch.tensor(want_cols, dtype=torch.float64), rtol=1e-12, atol=0
    )
    assert {"yarn", "dype"} <= set(RFR_PRESETS)
    with pytest.raises(ValueError, match="per-band"):
        rescaled_thetas(RFRConfig(mode="yarn"), AXES, THETA, (128, 128))
    with pytest.raises(ValueError, match="spatial axes"):
        RFRConfig(mode="dype", axes=(0, 1))


@pytest.mark.parametrize("mode", ["yarn", "dype"])
def test_tables_equal_cos_sin_of_the_closed_form(mode: str) -> None:
    rows, cols, sigma, ref = 24, 40, 0.35, 16.0
    config = RFRConfig(mode=mode, reference_grid=(ref, ref))
    ids = flux_ids(5, rows, cols)
    axes_t = [(0, 16, None), (1, 56, rows), (2, 56, cols)]
    for layout in ("comfy", "diffusers"):
        emb = RFREmbedder(DIM, THETA, AXES, config) if layout == "comfy" else RFRPosEmbed(THETA, AXES, config)
        emb.sigma = sigma
        out = emb(ids if layout == "comfy" else ids[0])
        start = 0
        for axis, d, length in axes_t:
            if length is None:
                omega, mag = [THETA ** (-2 * k / d) for k in range(d // 2)], 1.0
            else:
                omega, mag = closed_form(d, THETA, length, ref, sigma if mode == "dype" else 1.0)
            angles = ids[0, :, axis].double()[:, None] * torch.tensor(omega, dtype=torch.float64)
            cos, sin = (torch.cos(angles) * mag).float(), (torch.sin(angles) * mag).float()
            if layout == "comfy":
                block = out[0, 0, :, start // 2 : (start + d) // 2]
                torch.testing.assert_close(block[..., 0, 0], cos, rtol=0, atol=2e-6)
                torch.testing.assert_close(block[..., 1, 0], sin, rtol=0, atol=2e-6)
                torch.testing.assert_close(block[..., 0, 1], -sin, rtol=0, atol=2e-6)
            else:
                torch.testing.assert_close(out[0][:, start : start + d : 2], cos, rtol=0, atol=2e-6)
                torch.testing.assert_close(out[1][:, start + 1 : start + d : 2], sin, rtol=0, atol=2e-6)
            start += d


@pytest.mark.comfy
@pytest.mark.parametrize("mode", ["yarn", "dype"])
def test_within_the_reference_grid_both_equal_the_stock_embedders_exactly(mode: str) -> None:
    import_comfy()
    from comfy.ldm.flux.layers import EmbedND

    for grid in ((16, 16), (8, 12), (1, 1)):
        ids = flux_ids(7, *grid, batch=2)
        stock = EmbedND(dim=DIM, theta=THETA, axes_dim=AXES)
        ours = RFREmbedder.from_module(stock, RFRConfig(mode=mode, reference_grid=(16.0, 16.0)))
        ours.sigma = 0.3
        assert torch.equal(ours(ids), stock(ids))
        diff_stock = FluxPosEmbed(theta=THETA, axes_dim=AXES)
        cos, sin = RFRPosEmbed.from_module(diff_stock, RFRConfig(mode=mode, reference_grid=(16.0, 16.0)))(
            ids[0]
        )
        ref_cos, ref_sin = diff_stock(ids[0])
        assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)
