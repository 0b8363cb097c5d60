"""FLUX RoPE maths (op4ksr_core.rope) and token geometry (op4ksr_core.geometry) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from sr4k.op4ksr_core.geometry import TokenGrid, token_grid
from sr4k.op4ksr_core.rope import (
    axis_exponents,
    axis_frequencies,
    flux_ids,
    flux_image_ids,
    flux_text_ids,
    rope_angles,
    rope_cos_sin,
    rope_matrices,
)


@pytest.mark.parametrize("dim", [4, 6, 16, 56, 128])
@pytest.mark.parametrize("theta", [10_000, 20_520.5, 0.5])
def test_axis_frequencies_match_closed_form(dim: int, theta: float) -> None:
    omega = axis_frequencies(dim, theta)
    assert omega.dtype == torch.float64 and omega.shape == (dim // 2,)
    expected = torch.tensor([theta ** (-2 * k / dim) for k in range(dim // 2)], dtype=torch.float64)
    torch.testing.assert_close(omega, expected, rtol=1e-14, atol=0)  # a few ulp: pow vs Python **
    assert omega[0].item() == 1.0


def test_exponent_grids_agree_to_an_ulp_but_not_bitwise() -> None:
    lin, ar = axis_exponents(56, "linspace"), axis_exponents(56, "arange")
    # The reason both constructions exist: ComfyUI and diffusers differ here in the last bit.
    assert not torch.equal(lin, ar)
    ulp = torch.finfo(torch.float64).eps
    assert ((lin - ar).abs() <= ulp).all()
    assert torch.equal(axis_exponents(16, "linspace"), axis_exponents(16, "arange"))


def test_axis_frequency_errors() -> None:
    with pytest.raises(ValueError, match="even"):
        axis_frequencies(7, 10_000)
    with pytest.raises(ValueError, match="theta"):
        axis_frequencies(8, 0)
    with pytest.raises(ValueError, match="exponent_grid"):
        axis_exponents(8, "geomspace")  # type: ignore[arg-type]


def test_image_ids_layout() -> None:
    ids = flux_image_ids(2, 3, index=1, h_offset=4, w_offset=10)
    expected = torch.tensor(
        [[1, 4, 10], [1, 4, 11], [1, 4, 12], [1, 5, 10], [1, 5, 11], [1, 5, 12]], dtype=torch.float32
    )
    assert torch.equal(ids, expected)
    assert torch.equal(flux_text_ids(4), torch.zeros(4, 3))
    joint = flux_ids(4, 2, 3, batch=2)
    assert joint.shape == (2, 10, 3)
    assert torch.equal(joint[1, 4:], flux_image_ids(2, 3)) and torch.equal(joint[0, :4], torch.zeros(4, 3))


def test_image_ids_match_diffusers_pipeline() -> None:
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    ref = FluxPipeline._prepare_latent_image_ids(1, 5, 7, torch.device("cpu"), torch.float32)
    assert torch.equal(flux_image_ids(5, 7), ref)


def test_rope_matrices_are_rotations_by_pos_times_omega() -> None:
    pos = torch.tensor([[0.0, 1.0, 37.0, 127.0]])
    mats = rope_matrices(pos, 8, 10_000)
    assert mats.shape == (1, 4, 4, 2, 2) and mats.dtype == torch.float64
    for j, p in enumerate(pos[0].tolist()):
        for k in range(4):
            a = p * 10_000 ** (-2 * k / 8)
            expected = torch.tensor(
                [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
            )
            torch.testing.assert_close(mats[0, j, k], expected, rtol=0, atol=1e-13)
    # Rotating the pair (1, 0) by the matrix gives (cos a, sin a): adjacent-pair convention.
    assert torch.equal(mats[..., :, 0], torch.stack([mats[..., 0, 0], mats[..., 1, 0]], dim=-1))


def test_cos_sin_interleave_the_same_angles() -> None:
    pos = torch.arange(6, dtype=torch.float32) * 3
    cos, sin = rope_cos_sin(pos, 12, 10_000)
    angles = rope_angles(pos, 12, 10_000, "arange")
    assert cos.shape == (6, 12)
    assert torch.equal(cos[:, 0::2], torch.cos(angles)) and torch.equal(cos[:, 1::2], torch.cos(angles))
    assert torch.equal(sin[:, 0::2], torch.sin(angles)) and torch.equal(sin[:, 1::2], torch.sin(angles))


@pytest.mark.parametrize(
    ("px", "vae", "patch", "hw", "ppt"),
    [
        ((1024, 1024), 8, 2, (64, 64), 16),
        ((4096, 4096), 16, 2, (128, 128), 32),
        ((2048, 3072), 16, 2, (64, 96), 32),
    ],
)
def test_token_grid(px: tuple[int, int], vae: int, patch: int, hw: tuple[int, int], ppt: int) -> None:
    grid = token_grid(px[0], px[1], vae, patch)
    assert grid.hw == hw and grid.pixels_per_token == ppt
    assert grid.pixel_hw == px and grid.num_tokens == hw[0] * hw[1]
    assert grid.latent_hw == (px[0] // vae, px[1] // vae)


def test_token_grid_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"width_px=1000 .* 992 or 1024 px"):
        token_grid(1024, 1000, 16, 2)
    with pytest.raises(ValueError, match="height_px must be an int >= 32"):
        token_grid(16, 1024, 16, 2)
    with pytest.raises(ValueError, match="vae_downscale"):
        token_grid(1024, 1024, 0, 2)
    with pytest.raises(ValueError, match="TokenGrid.height"):
        TokenGrid(0, 4, 16, 2)
