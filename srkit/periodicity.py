"""L_AP: autocorrelation-based periodicity loss and score (OP4KSR, arXiv 2605.13457).

INFERRED CANDIDATE. The paper names an "autocorrelation-based periodicity loss (L_AP)" but its formula, domain,
lags and weighting are unknown (docs/op4ksr.md §4.1); this module implements the candidate of §4.3
with the engineering choices below, all configurable in :class:`PeriodicityConfig`.

For a signal x [B, C, H, W] (per sample; float32 forced for the FFTs; steps 1-4 in :mod:`srkit.autocorr`):
  1. mean removal under a separable Hann window w (edge effects / spectral leakage), x̃ = w·(x − mean_w(x));
  2. optional Gaussian high-pass of σ = ``highpass_sigma_frac``·max(period) (removes the slow decay of natural-
     image correlations; keeps the artifact fundamental 1/T, which is attenuated by < 1%);
  3. Wiener–Khinchin: A = IFFT2(Σ_c |FFT2(x̃_c)|²) on a zero-padded grid (linear, not circular, correlation),
     divided by the window's own autocorrelation (unbiased), normalised Â = A / A(0);
  4. at the lattice lags ℓ = (aT, bT), 0 < max(|a|, |b|) ≤ ``harmonics`` (half of them: Â is even), the peak
     prominence P(ℓ) = Â(ℓ) − mean of Â over the (T+1)×(T+1) box centred on ℓ. A component periodic with
     period T (or any divisor of T, e.g. the 16-px latent stride) repeats at ℓ but averages out over the box;
     smooth natural correlations cancel;
  5. strength S_T = mean over the lags of P(ℓ) (averaging before the ReLU cancels estimation noise), and
     L_AP = mean over periods of ReLU(S_T − margin).
S_T is ≈ the fraction of (high-passed) energy that repeats with period T: ≈ 0 (slightly negative) for natural
textures, → 1 for a pure period-T pattern, independent of contrast and, at a given period, of image size (the
estimation noise shrinks as T / size). Summing Â over the whole lattice would give exactly the energy of the
period-T projection; the lags up to ``harmonics`` are its local, affordable part. The gradient does not flow
through the normaliser A(0) by default, so the loss removes the repeating component instead of adding energy.

Domains of the loss (``domain``): "sr" penalises P(SR); "residual" penalises P(SR − HR); "difference"
penalises P(SR) − P(HR) (only periodicity in excess of the ground truth's, e.g. real brick walls).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .autocorr import autocorrelation, lattice_lags, prominences
from .images import luma

__all__ = [
    "DEFAULT_PERIOD_PX",
    "DOMAINS",
    "LAG_SETS",
    "PeriodicityConfig",
    "PeriodicityOptions",
    "autocorrelation",
    "lattice_lags",
    "periodicity_loss",
    "periodicity_map",
    "periodicity_score",
    "prominences",
]


# The period of OP4KSR's "intra-token" artifacts: one transformer token, F16 VAE x 2x2 packing = 32 px. srkit sits
# below the cores, so the number is written here; a test checks it equals op4ksr_core.geometry.pixels_per_token.
DEFAULT_PERIOD_PX = 32
DOMAINS = ("sr", "residual", "difference")
LAG_SETS = ("lattice", "axes")


@dataclass(frozen=True)
class PeriodicityConfig:
    """Configuration of L_AP / the periodicity score (see the module docstring for the maths)."""

    domain: str = "sr"
    periods: tuple[int, ...] = (DEFAULT_PERIOD_PX,)
    harmonics: int = 2  # lags k·T for k = 1..harmonics
    lags: str = "lattice"  # "lattice": all (aT, bT), |a|, |b| <= harmonics; "axes": (kT, 0), (0, kT)
    highpass_sigma_frac: float = 0.5  # Gaussian high-pass σ / max(periods); 0 disables
    window: bool = True  # Hann window against edge effects
    luma_only: bool = False  # BT.601 luma instead of the sum over R, G, B
    margin: float = 0.0  # prominence tolerated before the loss is non-zero
    symmetric: bool = False  # "difference": |P(SR) − P(HR)| instead of ReLU(P(SR) − P(HR))
    eps: float = 1e-12  # guards A(0) of flat inputs
    detach_norm: bool = True  # stop-gradient through A(0): remove the repeat, do not add energy

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain={self.domain!r} is not one of {DOMAINS}")
        if not self.periods or any(not isinstance(t, int) or t < 2 for t in self.periods):
            raise ValueError(f"periods={self.periods} must be ints >= 2 px, e.g. ({DEFAULT_PERIOD_PX},)")
        if self.lags not in LAG_SETS:
            raise ValueError(f"lags={self.lags!r} is not one of {LAG_SETS}")
        if self.harmonics < 1:
            raise ValueError(f"harmonics={self.harmonics} must be >= 1")
        if self.highpass_sigma_frac < 0 or self.margin < 0 or self.eps <= 0:
            raise ValueError(
                "highpass_sigma_frac and margin must be >= 0 and eps > 0, got "
                f"{self.highpass_sigma_frac}, {self.margin}, {self.eps}"
            )

    @property
    def max_lag(self) -> int:
        """Largest lag along an axis that the prominence boxes touch."""
        t = max(self.periods)
        return self.harmonics * t + t // 2


# Deprecated alias: the name before every config became a *Config (issue #13). It was public API (exported by
# op4ksr_core, named in docs/training_op4ksr.md), so old imports keep working. New code: PeriodicityConfig.
PeriodicityOptions = PeriodicityConfig


def _resolve(options: PeriodicityConfig | None, overrides: dict[str, object]) -> PeriodicityConfig:
    base = options if options is not None else PeriodicityConfig()
    if "periods" in overrides and isinstance(overrides["periods"], int):
        overrides = {**overrides, "periods": (overrides["periods"],)}
    return dataclasses.replace(base, **overrides) if overrides else base  # type: ignore[arg-type]


def _prepare(images: Tensor, opts: PeriodicityConfig) -> Tensor:
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    if opts.luma_only and images.shape[1] == 3:
        return luma(images)
    return images


def _strengths(images: Tensor, opts: PeriodicityConfig) -> Tensor:
    """Mean prominence over the lags of each period, [B, n_periods] (averaging first cancels estimation noise)."""
    p = _prominences_of(images, opts)
    return p.view(p.shape[0], len(opts.periods), -1).mean(dim=2)


def _prominences_of(images: Tensor, opts: PeriodicityConfig) -> Tensor:
    sigma = opts.highpass_sigma_frac * max(opts.periods)
    acf = autocorrelation(
        _prepare(images, opts),
        opts.max_lag,
        window=opts.window,
        highpass_sigma=sigma,
        eps=opts.eps,
        detach_norm=opts.detach_norm,
    )
    return prominences(acf, opts.periods, opts.harmonics, opts.lags)


def periodicity_loss(
    sr: Tensor, hr: Tensor | None = None, options: PeriodicityConfig | None = None, **overrides: object
) -> Tensor:
    """L_AP per sample [B] for SR (and HR for the "residual"/"difference" domains), images [B, C, H, W].

    ``options`` and/or keyword overrides of :class:`PeriodicityConfig` (e.g. ``domain="residual"``,
    ``periods=(16, 32)``). Differentiable w.r.t. ``sr``; the value range is [0, ~1].
    """
    opts = _resolve(options, overrides)
    if opts.domain != "sr":
        if hr is None:
            raise ValueError(f"domain={opts.domain!r} needs hr; pass hr or use domain='sr'")
        if hr.shape != sr.shape:
            raise ValueError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} must have the same shape")
    if opts.domain == "residual":
        assert hr is not None
        p = _strengths(sr - hr.detach(), opts)
    elif opts.domain == "difference":
        assert hr is not None
        with torch.no_grad():
            p_hr = _strengths(hr, opts)
        delta = _strengths(sr, opts) - p_hr
        p = delta.abs() if opts.symmetric else delta
    else:
        p = _strengths(sr, opts)
    return F.relu(p - opts.margin).mean(dim=1)


def periodicity_score(images: Tensor, period_px: int = DEFAULT_PERIOD_PX, *, harmonics: int = 2) -> Tensor:
    """Strength of the period-``period_px`` component (and its harmonics) per image [B], images [B, 3, H, W].

    Mean positive peak prominence of the normalised autocorrelation (≈ fraction of high-passed energy that
    repeats with that period): ~0 for natural textures, up to 1 for a pure periodic pattern.
    """
    opts = PeriodicityConfig(periods=(period_px,), harmonics=harmonics)
    return F.relu(_strengths(images, opts)).mean(dim=1)


def periodicity_map(
    image: Tensor,
    period_px: int = DEFAULT_PERIOD_PX,
    *,
    window_px: int | None = None,
    stride_px: int | None = None,
    chunk: int = 512,
) -> Tensor:
    """Local periodicity heatmap [H, W] of one image ([3, H, W] or [1, 3, H, W]) for an inspector view.

    Scores (first harmonic) of ``window_px`` windows (default 4·period) every ``stride_px`` (default half a
    window), bilinearly resampled to the image size. Windows are processed ``chunk`` at a time (memory).
    """
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"periodicity_map takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    c, h, w = image.shape
    win = window_px or 4 * period_px
    step = stride_px or max(1, win // 2)
    if win > min(h, w):
        raise ValueError(f"window {win} px exceeds the image {h}x{w}; pass a smaller window_px or period")
    opts = PeriodicityConfig(periods=(period_px,), harmonics=1)
    if 2 * opts.max_lag > win:
        raise ValueError(f"window_px={win} must be >= {2 * opts.max_lag} for period {period_px}")
    ny, nx = (h - win) // step + 1, (w - win) // step + 1
    rows_per_chunk = max(1, chunk // nx)
    scores = []
    # Unfold one band of window rows at a time: the full unfold of a 4K image would need gigabytes.
    for r0 in range(0, ny, rows_per_chunk):
        r1 = min(ny, r0 + rows_per_chunk)
        band = image[None, :, r0 * step : (r1 - 1) * step + win].float()
        patches = F.unfold(band, win, stride=step)[0].T.reshape(-1, c, win, win)  # [rows·nx, C, win, win]
        scores.append(F.relu(_strengths(patches, opts)).mean(dim=1))
    grid = torch.cat(scores).view(1, 1, ny, nx)
    return F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
