"""L_AP keeps no device memory between calls: its only cache is small, bounded and on the CPU."""

from __future__ import annotations

import gc

import pytest
import torch

from sr4k.srkit import autocorr, periodicity
from sr4k.srkit.periodicity import PeriodicityConfig, autocorrelation, periodicity_loss

H, W = 173, 167  # an unusual geometry, so any tensor of these sizes that survives is the module's
MAX_LAG = PeriodicityConfig().max_lag  # 80 px for the default period 32, 2 harmonics
# (The meta device cannot run it: torch.autocast has no meta backend.) The geometry check on the CPU catches a
# cache on any device; the device check runs where an accelerator is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def live_tensors() -> dict[int, torch.Tensor]:
    gc.collect()
    return {id(o): o for o in gc.get_objects() if issubclass(type(o), torch.Tensor)}


def geometry_sized(t: torch.Tensor) -> bool:
    return any(n in (H, W, H + MAX_LAG, W + MAX_LAG) for n in t.shape)


@pytest.mark.parametrize("device", DEVICES)
def test_no_window_or_filter_outlives_the_call(device: str) -> None:
    before = live_tensors()
    x = torch.rand(2, 3, H, W, device=device, requires_grad=True)
    loss = periodicity_loss(x)
    loss.sum().backward()
    del x, loss
    new = [t for i, t in live_tensors().items() if i not in before]
    kept = [(tuple(t.shape), str(t.device)) for t in new if t.device.type != "cpu" or geometry_sized(t)]
    assert kept == [], f"tensors kept after the call: {kept}"
    # What is kept: one small CPU entry per geometry in a bounded cache, nothing else cached at module level.
    assert [name for name, v in vars(periodicity).items() if hasattr(v, "cache_info")] == []
    caches = {name: v for name, v in vars(autocorr).items() if hasattr(v, "cache_info")}
    assert list(caches) == ["_window_autocorrelation"]
    assert caches["_window_autocorrelation"].cache_info().maxsize == 32
    entry = autocorr._window_autocorrelation(H, W, MAX_LAG, True)
    assert entry.device.type == "cpu" and tuple(entry.shape) == (2 * MAX_LAG + 1,) * 2


def test_cache_is_bounded() -> None:
    for n in range(40):
        autocorr._window_autocorrelation(160 + n, 160, MAX_LAG, True)
    assert autocorr._window_autocorrelation.cache_info().currsize <= 32


def test_window_autocorrelation_matches_the_closed_form_and_the_2d_fft() -> None:
    lags = torch.arange(-MAX_LAG, MAX_LAG + 1, dtype=torch.float64)
    ones = autocorr._window_autocorrelation(H, W, MAX_LAG, False).double()
    torch.testing.assert_close(ones, torch.outer(H - lags.abs(), W - lags.abs()), rtol=1e-6, atol=0)
    # Hann window: the separable product equals the direct 2-D FFT autocorrelation of the 2-D window.
    win = torch.outer(
        torch.hann_window(H, periodic=False, dtype=torch.float64),
        torch.hann_window(W, periodic=False, dtype=torch.float64),
    )
    size = (H + MAX_LAG, W + MAX_LAG)
    full = torch.fft.irfft2(torch.fft.rfft2(win, s=size).abs() ** 2, s=size)
    idx_h, idx_w = lags.long() % size[0], lags.long() % size[1]
    direct = full[idx_h][:, idx_w]
    direct = direct.clamp(min=1e-6 * float(direct[MAX_LAG, MAX_LAG]))
    torch.testing.assert_close(
        autocorr._window_autocorrelation(H, W, MAX_LAG, True).double(),
        direct,
        rtol=1e-5,
        atol=1e-9 * float(direct.max()),
    )
    acf = autocorrelation(torch.rand(1, 3, H, W), MAX_LAG)
    assert float(acf[0, MAX_LAG, MAX_LAG]) == pytest.approx(1.0)
