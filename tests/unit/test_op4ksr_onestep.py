"""The one-step update and geometry helpers against closed forms."""

from __future__ import annotations

import pytest
import torch

from sr4k.op4ksr_core.onestep import (
    OneStepConfig,
    one_step_input,
    one_step_x0,
    pack_latents,
    pad_for_crop,
    target_size,
    unpack_latents,
)


def test_one_step_recovers_x0_on_an_exact_flow_path() -> None:
    """On x_t = (1-t) x0 + t eps with the true velocity v = eps - x0, one step returns x0 exactly."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 16, 4, 6, generator=g), torch.randn(2, 16, 4, 6, generator=g)
    for t in (0.25, 0.5, 1.0):
        x_t = (1 - t) * x0 + t * eps
        torch.testing.assert_close(one_step_x0(x_t, eps - x0, t), x0)


def test_input_modes() -> None:
    z = torch.randn(1, 16, 2, 2)
    torch.testing.assert_close(one_step_input(z, 0.25, "flow"), 0.75 * z)
    torch.testing.assert_close(one_step_input(z, 0.25, "direct"), z)
    with pytest.raises(ValueError, match="input_mode"):
        one_step_input(z, 0.25, "noisy")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t_star": 0.0}, "t_star"),
        ({"t_star": 1.5}, "t_star"),
        ({"input_mode": "x"}, "input_mode"),
        ({"t_star": 1.0, "input_mode": "flow"}, "discards"),
        ({"empty_text_tokens": 0}, "empty_text_tokens"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OneStepConfig(**kwargs)


def test_target_size_keeps_aspect() -> None:
    assert target_size(1024, 1024, scale=4) == (4096, 4096)
    assert target_size(540, 960, long_side=4096) == (2304, 4096)  # 16:9
    assert target_size(960, 540, long_side=4096) == (4096, 2304)  # 9:16
    assert target_size(411, 960, long_side=3840) == (1644, 3840)  # 21:9-ish
    with pytest.raises(ValueError, match="exactly one"):
        target_size(10, 10)
    with pytest.raises(ValueError, match="exactly one"):
        target_size(10, 10, scale=2, long_side=20)


def test_pad_for_crop_reflects_and_reports_size() -> None:
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    padded, hw = pad_for_crop(x, 4)
    assert padded.shape == (2, 3, 8, 8) and hw == (5, 7)
    torch.testing.assert_close(padded[..., :5, :7], x)
    torch.testing.assert_close(padded[..., 5, :7], x[..., 3, :])  # reflection about the last row
    same, _ = pad_for_crop(padded, 4)
    assert same is padded
    tiny, hw = pad_for_crop(torch.ones(1, 3, 2, 2), 32)  # pad larger than the image: replicate
    assert tiny.shape == (1, 3, 32, 32) and hw == (2, 2) and torch.all(tiny == 1)


def test_pack_unpack_round_trip_and_flux_order() -> None:
    z = torch.randn(2, 16, 6, 4)
    tokens = pack_latents(z, 2)
    assert tokens.shape == (2, 6, 64)
    torch.testing.assert_close(unpack_latents(tokens, (6, 4), 2), z)
    # Token 1 is the patch at row 0, column 1; its features run (channel, ph, pw).
    torch.testing.assert_close(tokens[0, 1].view(16, 2, 2), z[0, :, 0:2, 2:4])
    with pytest.raises(ValueError, match="patch size"):
        pack_latents(torch.randn(1, 16, 5, 4), 2)
