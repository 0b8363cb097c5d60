"""YaRN and DyPE RoPE spectra: training-free extrapolation of FLUX's rotary embedding to 4K grids.

Per spatial axis with ``d`` dims, stock base ``theta``, reference length ``L0`` (tokens the model was
trained at on that axis) and current length ``L``, the length scale is ``s = max(1, L / L0)``. Three
candidate spectra per band ``k = 0 .. d/2 - 1`` (``omega_k = theta ** (-2k/d)``, rad per token):

- base:   ``omega_k`` (stock FLUX);
- linear: ``omega_k / s`` (position interpolation);
- NTK:    ``theta' ** (-2k/d)`` with ``theta' = theta * s ** (d / (d - 2))`` (``rfr.ntk_theta``).

YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension", eq. 16–20; per image axis as DyPE
and UltraFlux use it, docs/op4ksr.md Appendix D) blends them by how many full rotations band ``k`` makes
over the reference length, ``n_k = L0 * omega_k / (2 pi)``. The band index where ``n_k`` equals ``n`` is

    k(n) = d * ln(L0 / (2 pi n)) / (2 ln theta).

Two linear ramps over the band index, ``ramp(k; lo, hi) = clamp((k - lo) / (hi - lo), 0, 1)``, with
``lo = floor(k(a))``, ``hi = ceil(k(b))`` clamped to [0, d/2]:

    f_k = linear_k * ramp(k; beta)  + NTK_k  * (1 - ramp(k; beta)),    beta  = (1.25, 0.75) rotations
    w_k = f_k      * ramp(k; gamma) + base_k * (1 - ramp(k; gamma)),   gamma = (16, 2) rotations

so bands that rotate >= 16 times over L0 keep their stock frequency (local detail), bands under 0.75
rotations are interpolated linearly (global layout) and the bands between use NTK. YaRN's attention
temperature is folded into the rotary tables: cos and sin of the rescaled axes are multiplied by
``mscale = 1 + 0.1 ln s`` (so the rotated q and k are each scaled by mscale, as DyPE's and UltraFlux's
FLUX code do, and YaRN's reference does for q and k).

DyPE (Issachar et al. 2025, "DyPE: Dynamic Position Extrapolation", FLUX code) makes the ramps depend on
the sampling time ``t`` (FLUX's sigma; 1 = pure noise): both rotation pairs are multiplied by
``kappa = t ** 2``. As t -> 0 every threshold moves past the last band and the spectrum returns to the
stock one (mscale stays). At t = 1 DyPE equals YaRN.

One deliberate difference from the DyPE code: it clamps only ``hi`` to d/2, so for tiny t (``lo`` past
d/2, about t < 0.03 at 4096 px with F8) its ramp inverts and all bands jump to linear interpolation; we
clamp ``lo`` as well, which gives the stock spectrum the formula tends to.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .rfr import ntk_theta
from .rope import ExponentGrid, axis_frequencies

__all__ = [
    "YARN_BETA",
    "YARN_GAMMA",
    "yarn_mscale",
    "dype_kappa",
    "correction_band",
    "ramp_bounds",
    "linear_ramp",
    "yarn_frequencies",
]

YARN_BETA: tuple[float, float] = (1.25, 0.75)
"""Rotations over the reference length where the ramp goes from NTK (>= 1.25) to linear (<= 0.75)."""
YARN_GAMMA: tuple[float, float] = (16.0, 2.0)
"""Rotations where the ramp goes from the stock frequency (>= 16) to the beta blend (<= 2)."""

# DyPE's guard against a zero-width ramp (lo == hi): widen it by this many bands.
_MIN_RAMP_WIDTH = 0.001


def _check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def yarn_mscale(scale: float) -> float:
    """YaRN's rotary magnitude ``1 + 0.1 ln s`` for length scale ``s`` (1 when ``s <= 1``)."""
    scale = _check_positive("length scale", scale)
    return 1.0 if scale <= 1.0 else 1.0 + 0.1 * math.log(scale)


def dype_kappa(sigma: float) -> float:
    """DyPE's time factor ``kappa = t ** 2`` for a FLUX sigma ``t``, clamped to [0, 1]."""
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number, got {sigma!r}.")
    t = min(max(float(sigma), 0.0), 1.0)
    return t * t


def correction_band(rotations: float, dim: int, theta: float, reference: float) -> float:
    """Fractional band index ``k`` that makes ``rotations`` full turns over ``reference`` tokens.

    ``k = dim * ln(reference / (2 pi rotations)) / (2 ln theta)``; ``+inf`` for ``rotations == 0``
    (no band is that slow).
    """
    if rotations < 0:
        raise ValueError(f"rotations must be >= 0, got {rotations!r}.")
    if rotations == 0:
        return math.inf
    return dim * math.log(reference / (2.0 * math.pi * rotations)) / (2.0 * math.log(theta))


def ramp_bounds(
    rotations: tuple[float, float], dim: int, theta: float, reference: float
) -> tuple[float, float]:
    """``(lo, hi)`` band bounds of a YaRN ramp for ``(fast, slow)`` rotation counts, clamped to [0, dim/2]."""
    fast, slow = rotations
    half = dim // 2

    def clamp(band: float, rounding) -> float:  # noqa: ANN001 - math.floor or math.ceil
        return float(half) if band >= half else float(max(rounding(band), 0))

    return (
        clamp(correction_band(fast, dim, theta, reference), math.floor),
        clamp(correction_band(slow, dim, theta, reference), math.ceil),
    )


def linear_ramp(lo: float, hi: float, n: int, device: torch.device | None = None) -> Tensor:
    """``clamp((k - lo) / (hi - lo), 0, 1)`` for k = 0 .. n-1, float64 (0 below ``lo``, 1 from ``hi``)."""
    if hi == lo:
        hi = lo + _MIN_RAMP_WIDTH
    k = torch.arange(n, dtype=torch.float64, device=device)
    return ((k - lo) / (hi - lo)).clamp(0.0, 1.0)


def yarn_frequencies(
    dim: int,
    theta: float,
    scale: float,
    reference: float,
    kappa: float = 1.0,
    exponent_grid: ExponentGrid = "arange",
    device: torch.device | None = None,
) -> Tensor:
    """YaRN (``kappa = 1``) or DyPE (``kappa = t**2``) frequencies of one axis, float64 ``[dim // 2]``.

    ``scale`` is the length scale ``L / L0`` (at most 1: the stock frequencies), ``reference`` is ``L0``
    in tokens. See the module docstring for the blend.
    """
    theta = _check_positive("theta", theta)
    scale = _check_positive("length scale", scale)
    reference = _check_positive("reference length", reference)
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must lie in [0, 1], got {kappa!r}.")
    base = axis_frequencies(dim, theta, exponent_grid, device)
    if scale <= 1.0:
        return base
    linear = base / scale
    ntk = axis_frequencies(dim, ntk_theta(theta, dim, scale), exponent_grid, device)
    beta = (YARN_BETA[0] * kappa, YARN_BETA[1] * kappa)
    gamma = (YARN_GAMMA[0] * kappa, YARN_GAMMA[1] * kappa)
    r_beta = linear_ramp(*ramp_bounds(beta, dim, theta, reference), dim // 2, device)
    blend = linear * r_beta + ntk * (1.0 - r_beta)
    r_gamma = linear_ramp(*ramp_bounds(gamma, dim, theta, reference), dim // 2, device)
    return blend * r_gamma + base * (1.0 - r_gamma)
