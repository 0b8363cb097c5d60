"""F16 VAE: decoder-tail maths (chunked nearest-up + conv), decode modes, config and latent format."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sr4k.op4ksr_core.vae.config import FLUX_F8, FLUX_F16, VAE_PRESETS, VaeConfig, check_decode_mode
from sr4k.op4ksr_core.vae.latent_format import F8_LATENT, F16_LATENT, LatentFormat
from sr4k.op4ksr_core.vae.tail import (
    DECODE_SHIFT,
    upsample_conv_reference,
    upsample_conv_rows,
    upsample_conv_tail,
)


def quadrant_partitioned(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Diffusion-4K's partitioned tail as docs/op4ksr.md §9.2 describes it: 2×2 quadrants with a one-pixel
    overlap, zero padding on each quadrant's outer side, nearest ×2, conv_out (padding 1), crop the overlap."""
    _, _, h, w = features.shape
    ph, pw = h // 2, w // 2
    rows = []
    for i in (0, ph):
        row = []
        for j in (0, pw):
            part = features[:, :, max(i - 1, 0) : min(i + ph + 1, h), max(j - 1, 0) : min(j + pw + 1, w)]
            left, right = (1, 0) if j == 0 else (0, 1)
            top, bottom = (1, 0) if i == 0 else (0, 1)
            part = F.interpolate(F.pad(part, (left, right, top, bottom)), scale_factor=2, mode="nearest")
            row.append(F.conv2d(part, weight, bias, padding=1)[:, :, 1 : 2 * ph + 1, 1 : 2 * pw + 1])
        rows.append(torch.cat(row, dim=3))
    return torch.cat(rows, dim=2)


def _tail_inputs(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, 8, h, w, generator=g),
        torch.randn(3, 8, 3, 3, generator=g),
        torch.randn(3, generator=g),
    )


@pytest.mark.parametrize(("h", "w"), [(8, 8), (6, 10), (4, 12)])
def test_partitioned_shift_equals_quadrant_decode(h: int, w: int) -> None:
    x, wt, b = _tail_inputs(h, w)
    ours = upsample_conv_reference(x, wt, b, upscale=2, shift=DECODE_SHIFT["partitioned"])
    torch.testing.assert_close(ours, quadrant_partitioned(x, wt, b), rtol=1e-5, atol=1e-5)
    aligned = upsample_conv_reference(x, wt, b, upscale=2, shift=DECODE_SHIFT["aligned"])
    torch.testing.assert_close(aligned, F.conv2d(F.interpolate(x, scale_factor=2), wt, b, padding=1))
    # The fixture README's relation, on random data.
    torch.testing.assert_close(ours[..., 1:, 1:], aligned[..., :-1, :-1])
    assert (ours[..., 0, :] - aligned[..., 0, :]).abs().max() > 1e-3  # the first row really differs


@pytest.mark.parametrize("mode", ["aligned", "partitioned"])
@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 7, 1000])
def test_chunked_tail_is_bitwise_the_unchunked_one(mode: str, chunk_rows: int) -> None:
    x, wt, b = _tail_inputs(5, 7, seed=1)  # odd sizes: chunks straddle source rows
    shift = DECODE_SHIFT[mode]
    ref = upsample_conv_reference(x, wt, b, upscale=2, shift=shift)
    out = upsample_conv_tail(x, wt, b, upscale=2, shift=shift, chunk_rows=chunk_rows)
    assert out.shape == (2, 3, 10, 14)
    assert torch.equal(out, ref), (out - ref).abs().max()


def test_tail_rows_window_and_stride_one() -> None:
    x, wt, b = _tail_inputs(6, 5, seed=2)
    ref = upsample_conv_reference(x, wt, b, upscale=2, shift=1)
    assert torch.equal(
        upsample_conv_rows(x, wt, b, upscale=2, shift=1, row_start=3, row_stop=8), ref[:, :, 3:8]
    )
    # upscale 1 (the F8 VAE) is a plain zero-padded conv, chunked or not.
    plain = F.conv2d(x, wt, b, padding=1)
    torch.testing.assert_close(upsample_conv_tail(x, wt, b, upscale=1, shift=0, chunk_rows=2), plain)


def test_tail_rejects_bad_arguments() -> None:
    x, wt, b = _tail_inputs(4, 4)
    with pytest.raises(ValueError, match="chunk_rows=0"):
        upsample_conv_tail(x, wt, b, upscale=2, shift=0, chunk_rows=0)
    with pytest.raises(ValueError, match="shift=2"):
        upsample_conv_rows(x, wt, b, upscale=2, shift=2, row_start=0, row_stop=2)
    with pytest.raises(ValueError, match="square kernel of odd size"):
        upsample_conv_tail(x, torch.zeros(3, 8, 2, 2), b, upscale=2, shift=0, chunk_rows=2)


def test_flux_presets_and_derived_geometry() -> None:
    assert FLUX_F16.downscale == 16 and FLUX_F8.downscale == 8
    assert FLUX_F16.tail_upscale == 2 and FLUX_F16.moment_channels == 32 and FLUX_F16.num_levels == 4
    assert VAE_PRESETS["flux_f16"] is FLUX_F16
    assert F16_LATENT == LatentFormat(
        latent_channels=16, downscale=16, scale_factor=0.3611, shift_factor=0.1159
    )
    assert F8_LATENT.downscale == 8 and F8_LATENT.scale_factor == F16_LATENT.scale_factor


def test_latent_format_round_trip_and_values() -> None:
    z = torch.linspace(-3, 3, 16 * 4).reshape(1, 16, 2, 2)
    model = F16_LATENT.to_model(z)
    torch.testing.assert_close(model, (z - 0.1159) * 0.3611)
    torch.testing.assert_close(F16_LATENT.from_model(model), z)
    assert F16_LATENT.latent_size(4096, 2048) == (256, 128)
    with pytest.raises(ValueError, match=r"multiple of 16.*pad or crop to 96x128"):
        F16_LATENT.latent_size(100, 130)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_stride": 4}, "input_stride=4"),
        ({"block_out_channels": (128, 250)}, r"\[250\] are not divisible by norm_num_groups=32"),
        ({"block_out_channels": ()}, "non-empty tuple"),
        ({"latent_channels": 0}, "latent_channels=0"),
        ({"scaling_factor": 0.0}, "scaling_factor=0.0"),
        ({"shift_factor": float("nan")}, "shift_factor=nan"),
    ],
)
def test_config_validation_names_value_and_fix(change: dict, message: str) -> None:
    fields = {**FLUX_F16.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        VaeConfig(**fields)


def test_decode_mode_validation() -> None:
    assert check_decode_mode("aligned", FLUX_F8) == "aligned"
    with pytest.raises(ValueError, match="'partitioned'.*'aligned'"):
        check_decode_mode("full", FLUX_F16)
    with pytest.raises(ValueError, match="needs input_stride=2"):
        check_decode_mode("partitioned", FLUX_F8)


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
