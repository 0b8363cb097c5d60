"""Closed-form checks of the colour-correction maths (``srkit.color``)."""

from __future__ import annotations

import math

import pytest
import torch

from sr4k.srkit.color import (
    METHODS,
    adain,
    color_correct,
    linear_to_srgb,
    oklab_to_rgb,
    rgb_to_oklab,
    srgb_to_linear,
    wavelet_split,
)


def _image(b: int = 2, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_constant_images_take_the_reference_colour(method: str) -> None:
    up = torch.full((1, 3, 32, 48), 0.2)
    up[:, 1] = 0.6
    ref = torch.tensor([0.7, 0.3, 0.5]).view(1, 3, 1, 1).expand(1, 3, 8, 12).contiguous()
    out = color_correct(up, ref, method)
    torch.testing.assert_close(
        out, ref.new_tensor([0.7, 0.3, 0.5]).view(1, 3, 1, 1).expand_as(out), atol=2e-5, rtol=0
    )


@pytest.mark.parametrize("method", METHODS)
def test_an_image_that_already_matches_is_unchanged(method: str) -> None:
    x = _image()
    torch.testing.assert_close(color_correct(x, x, method), x, atol=1e-5, rtol=0)


def test_wavelet_split_is_exact_and_low_is_smooth() -> None:
    x = _image(seed=3)
    high, low = wavelet_split(x)
    torch.testing.assert_close(high + low, x, atol=1e-6, rtol=0)
    assert low.diff(dim=-1).abs().mean() < x.diff(dim=-1).abs().mean()


def test_adain_matches_the_reference_statistics() -> None:
    x, r = _image(seed=1), _image(seed=2) * 0.5 + 0.3
    y = adain(x, r)
    torch.testing.assert_close(y.mean((2, 3)), r.mean((2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y.std((2, 3), unbiased=False), r.std((2, 3), unbiased=False), atol=1e-4, rtol=0
    )


def test_wavelet_keeps_detail_and_takes_reference_colour() -> None:
    ref = _image(1, 16, 16, seed=4)
    up = torch.nn.functional.interpolate(ref, scale_factor=4, mode="bicubic", align_corners=False)
    detail = 0.05 * torch.sin(torch.arange(64.0) * math.pi / 2).view(1, 1, 1, 64)
    shifted = (up + detail + torch.tensor([0.1, -0.05, 0.08]).view(1, 3, 1, 1)).clamp(0, 1)
    out = color_correct(shifted, ref, "wavelet")
    assert (out.mean((2, 3)) - up.mean((2, 3))).abs().max() < 0.01  # colour cast removed
    hf = out - torch.nn.functional.avg_pool2d(out, 3, 1, 1, count_include_pad=False)
    assert hf.abs().mean() > 0.5 * (detail - detail.mean()).abs().mean()  # detail survived


def test_strength_blends_linearly() -> None:
    x, r = _image(seed=5), _image(seed=6)
    full = color_correct(x, r, "adain", 1.0)
    half = color_correct(x, r, "adain", 0.5)
    torch.testing.assert_close(half, (x + full) / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(color_correct(x, r, "adain", 0.0), x)


def test_srgb_and_oklab_round_trip() -> None:
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x)
    torch.testing.assert_close(oklab_to_rgb(rgb_to_oklab(x)), x, atol=1e-9, rtol=0)
    # Oklab of pure white is L=1, a=b=0 (the defining normalisation).
    white = rgb_to_oklab(torch.ones(1, 3, 1, 1))
    torch.testing.assert_close(
        white.flatten(), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6, rtol=0
    )


def _hue_deg(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(1)
    return torch.rad2deg(torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)) % 360


@pytest.mark.parametrize("primary", [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.1, 0.2, 0.95)])
def test_lab_keeps_saturated_primaries_on_hue(primary: tuple[float, float, float]) -> None:
    """Saturated blues must not turn purple (nor reds orange, greens teal)."""
    colour = torch.tensor(primary).view(1, 3, 1, 1)
    ref = colour.expand(1, 3, 16, 16) * torch.linspace(0.9, 1.0, 16).view(1, 1, 1, 16)
    up = (colour * 0.85 + 0.1).expand(1, 3, 64, 64).contiguous()  # washed-out upscale
    out = color_correct(up, ref, "lab")
    hue_ref, hue_out = _hue_deg(ref.mean((2, 3), keepdim=True)), _hue_deg(out.mean((2, 3), keepdim=True))
    diff = ((hue_out - hue_ref + 180) % 360 - 180).abs()
    assert diff.max() < 3.0, f"hue moved by {diff.max():.1f} degrees"
    assert out.min() >= 0 and out.max() <= 1


def test_rgba_keeps_alpha_and_batches_broadcast_one_reference() -> None:
    x = torch.cat([_image(3), torch.rand(3, 1, 40, 56)], dim=1)
    ref = _image(1, 10, 30, seed=9)  # other size and aspect ratio
    out = color_correct(x, ref, "wavelet")
    assert out.shape == x.shape
    torch.testing.assert_close(out[:, 3], x[:, 3])


@pytest.mark.parametrize(
    ("up", "ref", "match"),
    [
        (torch.rand(2, 3, 8, 8), torch.rand(3, 3, 8, 8), "batch size mismatch"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8), "1 channel"),
        (torch.rand(0, 3, 8, 8), torch.rand(1, 3, 8, 8), "empty batch"),
        (torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8), r"\[B, C, H, W\]"),
    ],
)
def test_bad_input_names_the_problem(up: torch.Tensor, ref: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        color_correct(up, ref, "adain")


def test_unknown_method_and_strength() -> None:
    x = _image()
    with pytest.raises(ValueError, match="choose one of"):
        color_correct(x, x, "hsv")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strength"):
        color_correct(x, x, "adain", 1.5)
