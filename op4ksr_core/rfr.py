"""RFR, RoPE base-frequency rescaling: per-axis theta' for a token grid, and the band "allocation" report.

What the OP4KSR paper states (docs/op4ksr.md §3.1): one cause of periodic artefacts in one-step 4K SR with
FLUX + F16 VAE is a "RoPE base frequency allocation mismatch", fixed by "RoPE base Frequency Rescaling".
The formula, the new base, the axes and the schedule are UNKNOWN. This module implements the documented
candidates (docs/op4ksr.md §3.4) as named modes, all acting only on the spatial axes by default:

- ``"none"``:  theta' = theta (stock FLUX; the reference for equality tests).
- ``"scale"``: theta' = alpha * theta, candidate (a) (alpha < 1 is candidate (c), the reverse direction).
- ``"ntk"``:   theta' = theta * s ** (d / (d - 2)), candidate (b), NTK-aware base, with
  s = max(1, L / L_ref) per axis (L = grid length in tokens on that axis, L_ref = the trained length),
  d = that axis's RoPE dim. Non-square grids therefore get different thetas for rows and columns.

Default: ``"ntk"`` against FLUX.1's pre-training grid, 1024 px with the F8 VAE and 2x2 patches = 64 x 64
tokens (docs/op4ksr.md §3.3). Why: §3.3's first mismatch is positional range (rows reach 127 at 4096 px
with F16 vs about 63 in pre-training); NTK-aware scaling is the standard theta-only answer to exactly
that, it keeps the highest band (omega_0 = 1, local detail) and divides the lowest band's frequency by
s so its phase range over the new grid equals the trained one; it is the identity up to the trained
size and adapts per axis and per resolution at run time (4KSR-RealVary has varying aspect ratios).
At 4096^2 with F16 (128 tokens, s = 2, d = 56) it gives theta' ~ 20,520 (§3.4 b). This is an inference,
not the paper's formula: choose by ablation.

Training-free modes for base FLUX at 4K (``rope_yarn``, ``rfr_spectra``): they change per-band
frequencies rather than one base, and scale the rotary tables by YaRN's ``1 + 0.1 ln s``:

- ``"yarn"``: per-axis YaRN (NTK-by-parts ramps), as DyPE and UltraFlux define it.
- ``"dype"``: DyPE's time-aware YaRN: the ramps shrink with kappa = sigma**2, so the rescaling grows with
  the sampling sigma and vanishes as sigma -> 0. Needs the sigma of each model call (set by a ComfyUI
  wrapper or a diffusers forward hook; 1.0 when none is set, i.e. ``"yarn"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .geometry import FLUX_F8_DOWNSCALE, FLUX_PATCH_SIZE, token_grid
from .rope import axis_frequencies

__all__ = [
    "RFRMode",
    "RFR_MODES",
    "GRID_MODES",
    "SPECTRAL_MODES",
    "SPATIAL_AXES",
    "FLUX_TRAIN_GRID",
    "RFRConfig",
    "RFR_PRESETS",
    "ntk_theta",
    "rescaled_thetas",
    "BandRow",
    "band_allocation",
    "full_period_counts",
    "format_allocation_table",
]

RFRMode = Literal["none", "scale", "ntk", "yarn", "dype"]
RFR_MODES: tuple[str, ...] = ("none", "scale", "ntk", "yarn", "dype")
GRID_MODES: tuple[str, ...] = ("ntk", "yarn", "dype")
"""Modes that rescale by the token grid's length (spatial axes only)."""
SPECTRAL_MODES: tuple[str, ...] = ("yarn", "dype")
"""Modes that set per-band frequencies and a rotary magnitude instead of one base per axis."""

SPATIAL_AXES: tuple[int, int] = (1, 2)
"""FLUX RoPE axes of the token row (height) and column (width); axis 0 is the image index."""

# FLUX.1 pre-training resolution (docs/op4ksr.md §3.3): 1024 px, stock F8 VAE, 2x2 patchify -> 64 x 64 tokens.
FLUX_TRAIN_SIDE_PX = 1024
FLUX_TRAIN_GRID: tuple[int, int] = token_grid(
    FLUX_TRAIN_SIDE_PX, FLUX_TRAIN_SIDE_PX, FLUX_F8_DOWNSCALE, FLUX_PATCH_SIZE
).hw


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


@dataclass(frozen=True)
class RFRConfig:
    """RoPE base-frequency rescaling settings (see module docstring for the modes and the default).

    mode: ``"none"``, ``"scale"``, ``"ntk"``, ``"yarn"`` or ``"dype"``.
    alpha: theta multiplier for ``"scale"`` (ignored by the other modes).
    reference_grid: (rows, cols) in tokens the backbone was trained at; used by ``"ntk"``, ``"yarn"``, ``"dype"``.
    axes: RoPE axes whose theta is rescaled; (1, 2) = rows and columns. ``"ntk"`` accepts only spatial
        axes (it needs a grid length); ``"scale"`` may include axis 0.
    """

    mode: RFRMode = "ntk"
    alpha: float = 1.0
    reference_grid: tuple[float, float] = FLUX_TRAIN_GRID
    axes: tuple[int, ...] = SPATIAL_AXES

    def __post_init__(self) -> None:
        if self.mode not in RFR_MODES:
            raise ValueError(f"RFRConfig.mode must be one of {RFR_MODES}, got {self.mode!r}.")
        if not _positive(self.alpha):
            raise ValueError(f"RFRConfig.alpha must be a finite number > 0, got {self.alpha!r}.")
        ref = tuple(self.reference_grid)
        if len(ref) != 2 or not all(_positive(v) for v in ref):
            raise ValueError(
                f"RFRConfig.reference_grid must be (rows, cols) in tokens, both > 0, got {self.reference_grid!r}; "
                f"FLUX.1 was trained at {FLUX_TRAIN_GRID}."
            )
        axes = tuple(self.axes)
        if not axes or len(set(axes)) != len(axes) or not all(isinstance(a, int) and a >= 0 for a in axes):
            raise ValueError(
                f"RFRConfig.axes must be distinct non-negative ints, got {self.axes!r}; e.g. (1, 2)."
            )
        if self.mode in GRID_MODES and not set(axes) <= set(SPATIAL_AXES):
            raise ValueError(
                f"RFRConfig(mode={self.mode!r}) rescales by grid length, defined only for the spatial axes "
                f"{SPATIAL_AXES}; got axes={self.axes!r}. Use mode='scale' to change axis 0."
            )
        object.__setattr__(self, "reference_grid", ref)
        object.__setattr__(self, "axes", axes)


RFR_PRESETS: dict[str, RFRConfig] = {
    "none": RFRConfig(mode="none"),
    "ntk": RFRConfig(mode="ntk"),
    "scale_2x": RFRConfig(mode="scale", alpha=2.0),
    "scale_half": RFRConfig(mode="scale", alpha=0.5),
    "yarn": RFRConfig(mode="yarn"),
    "dype": RFRConfig(mode="dype"),
}
"""Named settings; ``"ntk"`` is the default (NTK-aware against FLUX.1's 64 x 64 pre-training grid)."""


def ntk_theta(theta: float, dim: int, scale: float) -> float:
    """NTK-aware base ``theta * scale ** (dim / (dim - 2))`` (docs/op4ksr.md §3.4 b).

    Chosen so the lowest band k = dim/2 - 1 gets omega / scale (interpolated by the length ratio)
    while omega_0 = 1 is unchanged. Needs dim > 2.
    """
    if not isinstance(dim, int) or dim <= 2 or dim % 2:
        raise ValueError(f"NTK rescaling needs an even axis dim > 2, got {dim!r}.")
    if not _positive(scale):
        raise ValueError(f"NTK length scale must be a finite number > 0, got {scale!r}.")
    return float(theta) * scale ** (dim / (dim - 2))


def _check_grid(grid_hw: tuple[float, float]) -> tuple[float, float]:
    grid = tuple(grid_hw)
    if len(grid) != 2 or not all(_positive(v) for v in grid):
        raise ValueError(f"grid_hw must be (rows, cols) in tokens, both > 0, got {grid_hw!r}.")
    return grid  # type: ignore[return-value]


def rescaled_thetas(
    config: RFRConfig,
    axes_dim: tuple[int, ...] | list[int],
    theta: float,
    grid_hw: tuple[float, float] | None = None,
) -> tuple[float, ...]:
    """Per-axis RoPE bases, one per entry of ``axes_dim``, for a (rows, cols) token grid.

    Axes not in ``config.axes`` keep ``theta``. For ``"ntk"`` (the only mode that needs ``grid_hw``)
    the length on axis 1 is ``grid_hw[0]`` and on axis 2 ``grid_hw[1]``; lengths at or below
    ``config.reference_grid`` keep the stock base.
    """
    if not _positive(theta):
        raise ValueError(f"theta must be a finite number > 0, got {theta!r}.")
    if max(config.axes) >= len(axes_dim):
        raise ValueError(f"RFRConfig.axes {config.axes} out of range for axes_dim {list(axes_dim)}.")
    if config.mode in SPECTRAL_MODES:
        raise ValueError(
            f"RFRConfig(mode={config.mode!r}) sets per-band frequencies, not one base per axis; "
            "use rfr_spectra.axis_spectra."
        )
    thetas = [float(theta)] * len(axes_dim)
    if config.mode == "scale":
        for axis in config.axes:
            thetas[axis] = config.alpha * float(theta)
    elif config.mode == "ntk":
        if grid_hw is None:
            raise ValueError("RFRConfig(mode='ntk') needs grid_hw=(rows, cols) in tokens.")
        grid = _check_grid(grid_hw)
        for axis in config.axes:
            length, reference = grid[axis - 1], config.reference_grid[axis - 1]
            # Only extrapolation needs a new base: inside the trained range the stock base is right.
            thetas[axis] = ntk_theta(theta, axes_dim[axis], max(1.0, length / reference))
    return tuple(thetas)


@dataclass(frozen=True)
class BandRow:
    """One RoPE band of one axis measured against the grid length on that axis."""

    axis: int
    band: int
    theta: float
    omega: float  # rad per token
    wavelength_tokens: float  # 2 pi / omega
    wavelength_px: float | None  # wavelength_tokens * pixels_per_token, if given
    grid_tokens: float
    periods_over_grid: float  # grid_tokens / wavelength_tokens; < 1: the band never completes a period


def band_allocation(
    axes_dim: tuple[int, ...] | list[int],
    thetas: tuple[float, ...] | list[float],
    grid_hw: tuple[float, float],
    pixels_per_token: int | None = None,
    axes: tuple[int, ...] = SPATIAL_AXES,
) -> list[BandRow]:
    """Every band of the spatial ``axes``: wavelength in tokens (and px) against the grid length.

    This is the "allocation" of docs/op4ksr.md §3.3: how many of an axis's ``d/2`` bands complete at least
    one period over the image (position detail) and how many complete less than one (global layout).
    """
    grid = _check_grid(grid_hw)
    if len(thetas) != len(axes_dim):
        raise ValueError(f"need one theta per axis: axes_dim {list(axes_dim)}, thetas {list(thetas)}.")
    if not set(axes) <= set(SPATIAL_AXES):
        raise ValueError(f"band_allocation reports spatial axes {SPATIAL_AXES} only, got axes={axes!r}.")
    rows = []
    for axis in axes:
        omegas = axis_frequencies(axes_dim[axis], thetas[axis]).tolist()
        length = grid[axis - 1]
        for k, omega in enumerate(omegas):
            wavelength = 2.0 * math.pi / omega
            px = None if pixels_per_token is None else wavelength * pixels_per_token
            rows.append(
                BandRow(axis, k, float(thetas[axis]), omega, wavelength, px, length, length / wavelength)
            )
    return rows


def full_period_counts(rows: list[BandRow]) -> dict[int, int]:
    """Per axis, how many bands complete at least one full period over the grid (wavelength <= length)."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row.axis] = counts.get(row.axis, 0) + (row.periods_over_grid >= 1.0)
    return counts


def format_allocation_table(rows: list[BandRow]) -> str:
    """Markdown table of ``band_allocation`` rows plus one summary line per axis."""
    lines = [
        "| axis | k | theta | omega (rad/token) | wavelength (tokens) | wavelength (px) | periods over grid |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        px = "-" if r.wavelength_px is None else f"{r.wavelength_px:,.1f}"
        lines.append(
            f"| {r.axis} | {r.band} | {r.theta:,.1f} | {r.omega:.4g} | {r.wavelength_tokens:,.2f} | {px} "
            f"| {r.periods_over_grid:.3g} |"
        )
    totals: dict[int, int] = {}
    for r in rows:
        totals[r.axis] = totals.get(r.axis, 0) + 1
    lengths = {r.axis: r.grid_tokens for r in rows}
    lines.append("")
    for axis, full in full_period_counts(rows).items():
        lines.append(
            f"axis {axis}: {full} of {totals[axis]} bands complete >= 1 period over {lengths[axis]:g} tokens; "
            f"{totals[axis] - full} complete less than one."
        )
    return "\n".join(lines)
