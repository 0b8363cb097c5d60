"""Kernels, noise, JPEG and the Real-ESRGAN second-order pipeline (srkit.kernels/noise/jpeg/degradations)."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sr4k.srkit.degradations import PRESETS, DegradationConfig, Degrader, StageSpec, degrade, filter2d
from sr4k.srkit.jpeg import LUMA_QTABLE, jpeg_compress, quality_tables
from sr4k.srkit.kernels import (
    KernelSpec,
    gaussian_kernel,
    generalized_gaussian_kernel,
    kernel_grid,
    plateau_kernel,
    pulse_kernel,
    sample_kernels,
    sinc_kernel,
)
from sr4k.srkit.noise import gaussian_noise, intensity_levels, poisson_noise
from synthetic_images import natural_image as _natural


def natural_image(h: int, w: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    return _natural(h, w, seed, batch, scales=(1, 2, 4, 8, 16, 32))  # the scales these tests were tuned on


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


# ----------------------------------------------------------------------------------------------- kernels
def test_gaussian_kernel_matches_closed_form_and_is_normalised():
    k = gaussian_kernel(21, 2.0)
    xx, yy = kernel_grid(21)
    ref = torch.exp(-(xx**2 + yy**2) / (2 * 2.0**2))
    torch.testing.assert_close(k, ref / ref.sum(), atol=1e-7, rtol=1e-5)
    assert abs(float(k.sum()) - 1) < 1e-6
    torch.testing.assert_close(k, k.T)
    torch.testing.assert_close(k, k.flip(0))


def test_anisotropic_rotation_by_quarter_turn_swaps_axes():
    a = gaussian_kernel(15, 2.5, 0.7, math.pi / 2)
    b = gaussian_kernel(15, 0.7, 2.5, 0.0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # σx along columns (x): the row through the centre is wider than the column.
    c = gaussian_kernel(15, 2.5, 0.7, 0.0)
    assert float(c[7, 0]) > 100 * float(c[0, 7])


def test_generalized_and_plateau_kernels():
    torch.testing.assert_close(generalized_gaussian_kernel(21, 1.7, beta=1.0), gaussian_kernel(21, 1.7))
    xx, yy = kernel_grid(21)
    q = (xx**2 + yy**2) / 1.5**2
    ref_plateau = 1 / (1 + q**1.5)
    torch.testing.assert_close(plateau_kernel(21, 1.5, beta=1.5), ref_plateau / ref_plateau.sum())
    ref_gen = torch.exp(-0.5 * q**0.5)
    torch.testing.assert_close(generalized_gaussian_kernel(21, 1.5, beta=0.5), ref_gen / ref_gen.sum())
    for k in (plateau_kernel(21, 1.5, 0.8, 0.3, 1.2), generalized_gaussian_kernel(21, 1.5, 0.8, 0.3, 2.0)):
        assert abs(float(k.sum()) - 1) < 1e-6
        torch.testing.assert_close(k, k.flip(0, 1))  # centrally symmetric
    # β < 1 has heavier tails than the Gaussian of the same σ.
    assert float(generalized_gaussian_kernel(21, 1.5, beta=0.5)[10, 0]) > 10 * float(
        gaussian_kernel(21, 1.5)[10, 0]
    )


def test_support_equals_zero_padded_small_kernel():
    small = gaussian_kernel(7, 3.0)
    padded = F.pad(small, (7, 7, 7, 7))
    batched = gaussian_kernel(21, torch.tensor([3.0, 3.0]), support=torch.tensor([7, 21]))
    torch.testing.assert_close(batched[0], padded)
    torch.testing.assert_close(batched[1], gaussian_kernel(21, 3.0))


def test_sinc_kernel_is_a_low_pass_with_the_requested_cutoff():
    n = 256
    f = torch.fft.fftfreq(n) * 2 * math.pi
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    for wc in (math.pi / 2, math.pi / 3, math.pi / 4):
        k = sinc_kernel(21, wc)
        assert abs(float(k.sum()) - 1) < 1e-6
        torch.testing.assert_close(k, k.T)
        resp = torch.fft.fft2(k, s=(n, n)).abs()
        passband, stopband = resp[r < 0.6 * wc], resp[(r > 1.4 * wc) & (r < math.pi)]
        assert 0.8 < float(passband.min()) and float(passband.max()) < 1.15
        assert float(stopband.max()) < 0.15
        assert 0.3 < float(resp[(r - wc).abs() < 0.05].mean()) < 0.7
    with pytest.raises(ValueError, match="cutoff"):
        sinc_kernel(21, 4.0)


def test_sampled_kernels_normalised_supported_and_seeded():
    spec = PRESETS["gtasr"].first.kernel
    a = sample_kernels(spec, 64, torch.Generator().manual_seed(1))
    b = sample_kernels(spec, 64, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (64, 21, 21)
    torch.testing.assert_close(a.sum(dim=(1, 2)), torch.ones(64))
    # Largest sampled side is 19: the outer ring of the 21x21 grid is always zero.
    assert float(a[:, 0].abs().max()) == 0.0 and float(a[:, :, -1].abs().max()) == 0.0
    with pytest.raises(ValueError, match="probs"):
        KernelSpec(probs=(0.5, 0.5, 0.5, 0.0, 0.0, 0.0))


# ------------------------------------------------------------------------------------------------- noise
def test_gaussian_noise_std_and_gray_sharing():
    img = torch.full((2, 3, 128, 128), 0.5)
    sigma = torch.tensor([10.0, 25.0]) / 255
    n = gaussian_noise(img, sigma, torch.tensor([False, True]), torch.Generator().manual_seed(0))
    for i in range(2):
        assert abs(float(n[i].std()) / float(sigma[i]) - 1) < 0.03
        assert abs(float(n[i].mean())) < 0.01 * float(sigma[i]) * 10
    torch.testing.assert_close(n[1, 0], n[1, 2])  # gray: shared by channels
    corr = torch.corrcoef(n[0].reshape(3, -1))[0, 1]
    assert abs(float(corr)) < 0.03  # colour: independent channels


def test_poisson_noise_variance_scales_with_intensity_and_scale():
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([256.0, 256.0])
    low, high = torch.full((2, 3, 128, 128), 0.2), torch.full((2, 3, 128, 128), 0.8)
    scale = torch.tensor([1.0, 2.0])
    no_gray = torch.tensor([False, False])
    n_low = poisson_noise(low, scale, no_gray, g, levels=levels)
    n_high = poisson_noise(high, scale, no_gray, g, levels=levels)
    for i, s in enumerate((1.0, 2.0)):
        for x, n in ((0.2, n_low), (0.8, n_high)):
            expected = s**2 * round(x * 255) / 255 / 256.0
            assert abs(float(n[i].var()) / expected - 1) < 0.05
    assert 3.6 < float(n_high[0].var() / n_low[0].var()) < 4.4


def test_intensity_levels_counts_distinct_8bit_values():
    img = torch.tensor([0.0, 0.5, 1.0]).repeat(1, 3, 4, 1)  # 3 distinct values
    assert float(intensity_levels(img)[0]) == 4.0
    assert (
        float(intensity_levels(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))[0])
        == 256
    )


# -------------------------------------------------------------------------------------------------- JPEG
def _pil_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1)[None].float() / 255


def test_quality_tables_follow_ijg_scaling():
    luma, chroma = quality_tables(torch.tensor([50.0, 100.0, 10.0]))
    torch.testing.assert_close(luma[0], torch.tensor(LUMA_QTABLE, dtype=torch.float32).view(8, 8))
    assert float(luma[1].max()) == 1.0 and float(chroma[1].max()) == 1.0
    assert float(luma[2, 0, 0]) == math.floor((16 * 500 + 50) / 100)


def test_jpeg_matches_pillow_and_degrades_monotonically():
    x = torch.round(natural_image(120, 200, seed=3) * 255) / 255  # odd size: not a multiple of 16
    errors = []
    for q in (30, 60, 95):
        ours = jpeg_compress(x, q)
        assert ours.shape == x.shape
        assert psnr01(ours, _pil_jpeg(x, q)) > 38.0
        errors.append(psnr01(ours, x))
    assert errors[0] < errors[1] < errors[2]
    # No chroma subsampling keeps more colour: closer to the input.
    assert psnr01(jpeg_compress(x, 60, chroma_subsampling=False), x) > errors[1]
    # Per-image qualities in one batch equal separate calls.
    both = jpeg_compress(torch.cat([x, x]), torch.tensor([30.0, 95.0]))
    torch.testing.assert_close(both[1:], jpeg_compress(x, 95.0))


# ---------------------------------------------------------------------------------------------- pipeline
def test_pipeline_shapes_range_and_determinism():
    hr = natural_image(128, 128, seed=1, batch=3)
    for scale in (4, 16):
        cfg = PRESETS["gtasr"].with_scale(scale)
        out = degrade(hr, cfg, torch.Generator().manual_seed(7))
        assert out.lr.shape == (3, 3, 128 // scale, 128 // scale)
        assert out.lr_up.shape == out.hr.shape == hr.shape
        for t in (out.lr, out.lr_up):
            assert float(t.min()) >= 0 and float(t.max()) <= 1
            torch.testing.assert_close(t * 255, torch.round(t * 255), rtol=0, atol=1e-4)
        ref_up = (
            torch.round(
                F.interpolate(out.lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1) * 255
            )
            / 255
        )
        torch.testing.assert_close(out.lr_up, ref_up)
        again = degrade(hr, cfg, torch.Generator().manual_seed(7))
        torch.testing.assert_close(out.lr, again.lr, rtol=0, atol=0)
    a = Degrader("realesrgan", seed=3)(hr).lr
    b = Degrader("realesrgan", seed=4)(hr).lr
    assert float((a - b).abs().mean()) > 1e-3


def test_pipeline_without_degradations_is_a_plain_downscale():
    tiny_blur = KernelSpec(sizes=(21,), probs=(1.0, 0, 0, 0, 0, 0), sigma_range=(0.1, 0.1), sinc_prob=0.0)
    clean = StageSpec(
        kernel=tiny_blur,
        resize_probs=(0.0, 0.0, 1.0),
        gaussian_noise_prob=1.0,
        noise_range=(0.0, 0.0),
        jpeg_range=(100.0, 100.0),
    )
    cfg = DegradationConfig(
        scale=4,
        first=clean,
        second=clean,
        final_sinc_prob=0.0,
        resize_modes=("bicubic",),
        jpeg_chroma_subsampling=False,
    )
    hr = natural_image(128, 96, seed=2, batch=2)
    out = degrade(hr, cfg, torch.Generator().manual_seed(0))
    ref = F.interpolate(hr, size=(32, 24), mode="bicubic", align_corners=False)
    assert psnr01(out.lr, ref) > 38.0


def test_filter2d_is_identity_for_pulse_and_blurs_otherwise():
    x = natural_image(40, 40)
    torch.testing.assert_close(filter2d(x, pulse_kernel(15, batch=1)), x)
    blurred = filter2d(x, gaussian_kernel(15, 2.0)[None])
    assert float((blurred[..., 1:] - blurred[..., :-1]).abs().mean()) < 0.7 * float(
        (x[..., 1:] - x[..., :-1]).abs().mean()
    )


def test_config_validation_and_presets():
    gt = PRESETS["gtasr"]
    assert gt.second_order_prob == 0.5 and gt.second.blur_prob == 0.8
    assert gt.first.kernel.sizes == tuple(range(3, 20, 2)) and gt.second.kernel.size == 15
    assert gt.first.resize_range == (0.15, 1.5) and gt.second.noise_range == (1.0, 25.0)
    assert gt.with_scale(16).scale == 16 and gt.with_scale(16).first == gt.first
    with pytest.raises(ValueError, match="resize_probs"):
        StageSpec(resize_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="scale"):
        dataclasses.replace(gt, scale=0)
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(1, 3, 30, 30), gt, torch.Generator())
