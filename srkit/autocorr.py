"""Normalised windowed autocorrelation of images and the peak prominence at lattice lags (steps 1-4 of L_AP).

For x [B, C, H, W] (float32 forced for the FFTs): mean removal under a separable Hann window, an optional
Gaussian high-pass, Wiener-Khinchin A = IFFT2(sum_c |FFT2(x_c)|^2) on a zero-padded grid (linear, not circular,
correlation) divided by the window's own autocorrelation, normalised by A(0); then the prominence of Â at the
lags (aT, bT) against the mean over the (T+1)^2 box around each. The maths and its choices are explained in
:mod:`srkit.periodicity`, which turns these prominences into L_AP and the periodicity score.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["autocorrelation", "lattice_lags", "prominences"]


def _hann(n: int, device: torch.device) -> Tensor:
    return (
        torch.hann_window(n, periodic=False, device=device, dtype=torch.float32)
        if n > 2
        else torch.ones(n, device=device)
    )


def _highpass_power(shape: tuple[int, int], sigma: float, device: torch.device) -> Tensor:
    """|H(f)|² of the Gaussian high-pass 1 − exp(−2π²σ²|f|²) on an rfft2 grid [Hp, Wp//2 + 1]."""
    fy = torch.fft.fftfreq(shape[0], device=device)[:, None]
    fx = torch.fft.rfftfreq(shape[1], device=device)[None, :]
    h = 1.0 - torch.exp(-2.0 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    return h * h


def _power(spectrum: Tensor) -> Tensor:
    """|X|² as re² + im² (smooth at X = 0, unlike |X| whose gradient is undefined there)."""
    return torch.view_as_real(spectrum).pow(2).sum(dim=-1)


def _lag_autocorrelation_1d(n: int, max_lag: int, window: bool) -> Tensor:
    """Autocorrelation of the 1-D window of length n at lags −L..L (float64, CPU, [2L+1])."""
    w = (
        torch.hann_window(n, periodic=False, dtype=torch.float64)
        if window and n > 2
        else torch.ones(n, dtype=torch.float64)
    )
    size = n + max_lag  # zero padding >= max lag: no circular wrap-around
    acf = torch.fft.irfft(torch.fft.rfft(w, n=size).abs() ** 2, n=size)
    return acf[torch.arange(-max_lag, max_lag + 1) % size]


@functools.lru_cache(maxsize=32)
def _window_autocorrelation(h: int, w: int, max_lag: int, window: bool) -> Tensor:
    """The 2-D window's own autocorrelation at the lags, [2L+1, 2L+1] float32 **on the CPU**, clamped away
    from 0. The window is separable, so this is the outer product of the 1-D autocorrelations. Cached per
    geometry: small (≤ 32 × (2L+1)² floats, ~3 MB at L = 80) and never on an accelerator, so the cache stays
    outside the host application's GPU memory management."""
    wacf = torch.outer(
        _lag_autocorrelation_1d(h, max_lag, window), _lag_autocorrelation_1d(w, max_lag, window)
    )
    return wacf.clamp(min=1e-6 * float(wacf[max_lag, max_lag])).to(torch.float32)


def _window_terms(
    h: int, w: int, max_lag: int, window: bool, highpass_sigma: float, device: torch.device
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Data-independent pieces for one geometry on ``device``: (window [H, W], its autocorrelation at the lags
    [2L+1, 2L+1], high-pass |H|² on the rfft2 grid or None, lag indices [2, 2L+1]).

    Built per call (elementwise, cheap next to the image's FFT) so that no module state keeps device memory:
    a 4K geometry would hold ~100 MB of window and filter outside ComfyUI's model management.
    """
    # Normal (not inference-mode) tensors: shared by ComfyUI inference and training with autograd.
    with torch.inference_mode(False), torch.no_grad():
        wy, wx = (
            (_hann(h, device), _hann(w, device))
            if window
            else (torch.ones(h, device=device), torch.ones(w, device=device))
        )
        win = wy[:, None] * wx[None, :]
        size = (h + max_lag, w + max_lag)  # zero padding >= max lag: no circular wrap-around
        lags = torch.arange(-max_lag, max_lag + 1, device=device)
        idx = torch.stack([lags % size[0], lags % size[1]])
        wacf = _window_autocorrelation(h, w, max_lag, window).to(device)
        hp = _highpass_power(size, highpass_sigma, device) if highpass_sigma > 0 else None
    return win, wacf, hp, idx


def autocorrelation(
    x: Tensor,
    max_lag: int,
    *,
    window: bool = True,
    highpass_sigma: float = 0.0,
    eps: float = 1e-12,
    detach_norm: bool = False,
) -> Tensor:
    """Normalised autocorrelation Â of x [B, C, H, W] (channels summed): [B, 2L+1, 2L+1], lag (0, 0) at [L, L].

    float32 regardless of autocast; differentiable. Requires L = ``max_lag`` ≤ min(H, W)/2.
    """
    b, c, h, w = x.shape
    if 2 * max_lag > min(h, w):
        raise ValueError(
            f"image {h}x{w} too small for lags up to {max_lag} px; use crops of at least "
            f"{2 * max_lag} px or fewer harmonics / smaller periods"
        )
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        win, wacf, hp, idx = _window_terms(h, w, max_lag, window, float(highpass_sigma), x.device)
        mean = (x * win).sum(dim=(-2, -1), keepdim=True) / win.sum()
        size = (h + max_lag, w + max_lag)
        power = _power(torch.fft.rfft2((x - mean) * win, s=size)).sum(dim=1)
        if hp is not None:
            power = power * hp
        acf = torch.fft.irfft2(power, s=size)[:, idx[0]][:, :, idx[1]]
        unbiased = acf / wacf
        zero = unbiased[:, max_lag, max_lag, None, None]
        return unbiased / ((zero.detach() if detach_norm else zero) + eps)


def lattice_lags(period: int, harmonics: int, lags: str = "lattice") -> list[tuple[int, int]]:
    """Tested lags (dy, dx) for one period: half of the lattice {(aT, bT)} \\ {0} (Â is even), or the axes."""
    k = range(1, harmonics + 1)
    if lags == "axes":
        return [(0, i * period) for i in k] + [(i * period, 0) for i in k]
    half = [(0, b) for b in k] + [(a, b) for a in k for b in range(-harmonics, harmonics + 1)]
    return [(a * period, b * period) for a, b in half]


def prominences(acf: Tensor, periods: tuple[int, ...], harmonics: int, lags: str = "lattice") -> Tensor:
    """Peak prominence P(ℓ) = Â(ℓ) − mean of Â over the (T+1)² box around ℓ, for every tested lag: [B, n_lags].

    The box spans one period in both directions, so any period-T (or period-T/m) component averages out of
    it while it repeats exactly at ℓ; a smooth (natural) correlation is nearly equal to its box mean.
    """
    lag0 = (acf.shape[-1] - 1) // 2
    out = []
    for t in periods:
        half = t // 2
        for dy, dx in lattice_lags(t, harmonics, lags):
            cy, cx = lag0 + dy, lag0 + dx
            box = acf[:, cy - half : cy + half + 1, cx - half : cx + half + 1]
            out.append(acf[:, cy, cx] - box.mean(dim=(-2, -1)))
    return torch.stack(out, dim=1)
