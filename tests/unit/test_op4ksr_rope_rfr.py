"""RFR modes (op4ksr_core.rfr): config validation, per-axis thetas and the band allocation report."""

from __future__ import annotations

import math

import pytest

from sr4k.op4ksr_core.geometry import token_grid
from sr4k.op4ksr_core.rfr import (
    FLUX_TRAIN_GRID,
    RFR_PRESETS,
    RFRConfig,
    band_allocation,
    format_allocation_table,
    full_period_counts,
    ntk_theta,
    rescaled_thetas,
)
from sr4k.op4ksr_core.rope import axis_frequencies

FLUX_AXES = (16, 56, 56)
THETA = 10_000


def test_default_is_ntk_against_flux_training_grid() -> None:
    assert FLUX_TRAIN_GRID == (64, 64)
    cfg = RFRConfig()
    assert cfg.mode == "ntk" and cfg.reference_grid == (64, 64) and cfg.axes == (1, 2)
    assert RFR_PRESETS["ntk"] == cfg and RFR_PRESETS["none"].mode == "none"


def test_none_and_unit_scale_are_identity() -> None:
    for cfg in (RFRConfig(mode="none"), RFRConfig(mode="scale", alpha=1.0)):
        assert rescaled_thetas(cfg, FLUX_AXES, THETA, (128, 77)) == (THETA,) * 3
    # NTK at or below the trained grid keeps the stock base.
    assert rescaled_thetas(RFRConfig(), FLUX_AXES, THETA, (64, 40)) == (THETA,) * 3


def test_scale_mode_changes_listed_axes_only() -> None:
    assert rescaled_thetas(RFRConfig(mode="scale", alpha=4.0), FLUX_AXES, THETA) == (
        THETA,
        40_000.0,
        40_000.0,
    )
    assert rescaled_thetas(RFRConfig(mode="scale", alpha=0.5, axes=(2,)), FLUX_AXES, THETA) == (
        THETA,
        THETA,
        5_000.0,
    )
    all_axes = RFRConfig(mode="scale", alpha=2.0, axes=(0, 1, 2))
    assert rescaled_thetas(all_axes, FLUX_AXES, THETA) == (20_000.0,) * 3


def test_ntk_values_from_op4ksr_doc() -> None:
    # docs/op4ksr.md §3.4 (b): d = 56, s = 2 -> ~20,520; s = 4 -> ~42,107.
    assert ntk_theta(THETA, 56, 2.0) == pytest.approx(20_520, abs=1)
    assert ntk_theta(THETA, 56, 4.0) == pytest.approx(42_107, abs=1)
    grid = token_grid(4096, 4096, vae_downscale=16, patch_size=2).hw
    thetas = rescaled_thetas(RFRConfig(), FLUX_AXES, THETA, grid)
    assert thetas[0] == THETA and thetas[1] == thetas[2] == THETA * 2 ** (56 / 54)


def test_ntk_non_square_grid_gives_per_axis_thetas() -> None:
    thetas = rescaled_thetas(RFRConfig(), FLUX_AXES, THETA, (96, 160))
    assert thetas == (THETA, THETA * 1.5 ** (56 / 54), THETA * 2.5 ** (56 / 54))
    assert thetas[1] != thetas[2]
    # A custom reference grid is per axis too.
    custom = RFRConfig(reference_grid=(32, 64))
    assert rescaled_thetas(custom, FLUX_AXES, THETA, (64, 64)) == (THETA, THETA * 2 ** (56 / 54), THETA)


def test_ntk_keeps_highest_band_and_interpolates_lowest() -> None:
    for s in (1.5, 2.0, 4.0):
        new = axis_frequencies(56, ntk_theta(THETA, 56, s))
        old = axis_frequencies(56, THETA)
        assert new[0].item() == old[0].item() == 1.0
        assert new[-1].item() == pytest.approx(old[-1].item() / s, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "pi"}, "mode must be one of"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"reference_grid": (64,)}, "reference_grid"),
        ({"reference_grid": (64, -1)}, "reference_grid"),
        ({"axes": ()}, "axes"),
        ({"axes": (1, 1)}, "axes"),
        ({"mode": "ntk", "axes": (0, 1)}, "spatial axes"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RFRConfig(**kwargs)


def test_rescaled_thetas_errors() -> None:
    with pytest.raises(ValueError, match="needs grid_hw"):
        rescaled_thetas(RFRConfig(), FLUX_AXES, THETA)
    with pytest.raises(ValueError, match="grid_hw"):
        rescaled_thetas(RFRConfig(), FLUX_AXES, THETA, (0, 64))
    with pytest.raises(ValueError, match="out of range"):
        rescaled_thetas(RFRConfig(mode="scale", axes=(3,)), FLUX_AXES, THETA)
    with pytest.raises(ValueError, match="even axis dim > 2"):
        ntk_theta(THETA, 2, 2.0)


def test_band_allocation_reproduces_op4ksr_table() -> None:
    # docs/op4ksr.md §3.3: wavelengths of the 56-dim spatial axis and bands shorter than the grid side.
    rows = band_allocation(FLUX_AXES, (THETA,) * 3, (128, 64), pixels_per_token=32)
    axis1 = [r for r in rows if r.axis == 1]
    assert len(rows) == 56 and len(axis1) == 28
    doc = {0: 6.28, 1: 8.73, 2: 12.13, 7: 62.83, 9: 121.3, 14: 628.3, 21: 6_283, 27: 45_220}
    for k, wavelength in doc.items():
        assert axis1[k].wavelength_tokens == pytest.approx(wavelength, rel=1e-3)
    assert axis1[0].wavelength_px == pytest.approx(2 * math.pi * 32)
    assert full_period_counts(rows) == {1: 10, 2: 8}
    assert full_period_counts(band_allocation(FLUX_AXES, (THETA,) * 3, (256, 256))) == {1: 12, 2: 12}


def test_band_allocation_sees_the_ntk_shift_and_formats() -> None:
    thetas = rescaled_thetas(RFRConfig(), FLUX_AXES, THETA, (128, 128))
    rows = band_allocation(FLUX_AXES, thetas, (128, 128))
    # NTK at s = 2 stretches every band but k = 0: 9 bands fit in 128 tokens instead of the stock 10
    # (the 64-token training grid holds 8), i.e. the allocation moves back towards the trained one.
    assert full_period_counts(rows) == {1: 9, 2: 9}
    stock = band_allocation(FLUX_AXES, (THETA,) * 3, (128, 128))
    assert all(
        r.wavelength_tokens > s.wavelength_tokens for r, s in zip(rows, stock, strict=True) if r.band > 0
    )
    table = format_allocation_table(rows)
    assert table.startswith("| axis | k | theta |")
    assert table.count("\n| 1 |") == 28
    assert "axis 2: 9 of 28 bands complete >= 1 period over 128 tokens; 19 complete less than one." in table
    with pytest.raises(ValueError, match="spatial axes"):
        band_allocation(FLUX_AXES, thetas, (128, 128), axes=(0,))
