"""Our PSNR / SSIM on Y equal pyiqa's (the numbers the papers report), under the convention of srkit.metrics.

pyiqa is the optional ``metrics`` extra; without it the test is skipped with the reason. pyiqa's PSNR and SSIM
need no weights, so nothing is downloaded.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sr4k.cli.bench_score import Scorer
from sr4k.srkit.jpeg import jpeg_compress
from sr4k.srkit.metrics import psnr, ssim
from synthetic_images import natural_image

pyiqa = pytest.importorskip(
    "pyiqa",
    reason="pyiqa (the optional `metrics` extra) is not installed; "
    "pip install sr4k[metrics] to run the parity test",
)

PYIQA_MSE_EPS = 1e-8  # pyiqa's psnr adds this to the MSE of [0, 1] images


def q8(x: torch.Tensor) -> torch.Tensor:
    """8-bit levels: both libraries are meant for images read from PNG/JPEG files."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    hr = q8(natural_image(96, 128, seed=3, batch=1, scales=(1, 2, 4, 8)))  # textured: PSNRs of 20..40 dB
    g = torch.Generator().manual_seed(0)
    lr = F.interpolate(hr, scale_factor=0.25, mode="bicubic", align_corners=False, antialias=True)
    return {
        "noise": (q8(hr + 0.03 * torch.randn(hr.shape, generator=g)), hr),
        "bicubic_x4": (q8(F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False)), hr),
        "jpeg": (jpeg_compress(hr, 20.0), hr),
        "offset": (q8(hr + 4 / 255), hr),
        "other_image": (q8(natural_image(96, 128, seed=4, batch=1)), hr),
    }


@pytest.fixture(scope="module")
def pyiqa_metrics() -> dict[str, object]:
    # GTASR's evaluation: test_y_channel=True, color_space='ycbcr' (pyiqa's default colour space is YIQ).
    return {
        name: pyiqa.create_metric(name, test_y_channel=True, color_space="ycbcr", device="cpu")
        for name in ("psnr", "ssim")
    }


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_y_equals_pyiqa(pyiqa_metrics: dict[str, object], crop: int) -> None:
    ref_metric = (
        pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", crop_border=crop, device="cpu")
        if crop
        else pyiqa_metrics["ssim"]
    )
    for name, (sr, hr) in cases().items():
        ref = float(ref_metric(sr, hr))
        ours = float(ssim(sr, hr, crop_border=crop, protocol="pyiqa")[0])
        assert abs(ours - ref) <= 1e-4, f"{name}: ours {ours:.6f} pyiqa {ref:.6f}"
        if crop == 0:  # what `sr4k bench` reports
            assert abs(Scorer(("ssim",)).score(sr[0], hr[0])["ssim"] - ref) <= 1e-4, name  # type: ignore[operator]
    # The BasicSR protocol (float Y, = scikit-image) is a different number: why the protocol switch exists.
    gaps = [
        abs(float(ssim(sr, hr, protocol="basicsr")[0]) - float(pyiqa_metrics["ssim"](sr, hr)))
        for sr, hr in cases().values()
    ]
    assert min(gaps) > 1e-4 * 5


def test_psnr_y_equals_pyiqa(pyiqa_metrics: dict[str, object]) -> None:
    for name, (sr, hr) in cases().items():
        ref = float(pyiqa_metrics["psnr"](sr, hr))
        ours = float(psnr(sr, hr, quantize=True)[0])
        bench = Scorer(("psnr",)).score(sr[0], hr[0])["psnr"]
        assert ref < 43.0, f"{name}: pyiqa's MSE epsilon shifts PSNRs above 43 dB by more than 1e-3 dB"
        assert abs(ours - ref) <= 1e-3 and abs(bench - ref) <= 1e-3, f"{name}: ours {ours} pyiqa {ref}"  # type: ignore[operator]
        # Exactly the same quantity once pyiqa's epsilon is taken out (float32 inside pyiqa):
        ref_no_eps = -10 * math.log10(10 ** (-ref / 10) - PYIQA_MSE_EPS)
        assert abs(ours - ref_no_eps) <= 1e-4, name
