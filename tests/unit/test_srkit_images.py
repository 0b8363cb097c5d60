"""The one image-batch validator (srkit.images.check_image): each problem named with its fix."""

from __future__ import annotations

import pytest
import torch

from sr4k.srkit.images import ImageError, check_image


def test_a_good_batch_is_returned_unchanged() -> None:
    x = torch.rand(2, 4, 8, 8)
    assert check_image(x) is x
    assert check_image(x[:, :3], channels=3, check_values=True, multiple=8) is not None
    check_image(torch.rand(1, 5, 8, 8), channels=(1, 5))  # any declared channel count passes


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        ([[0.0]], {}, r"image must be a torch.Tensor \[B, C, H, W\] in \[0, 1\], got list"),
        (torch.rand(8, 8), {}, r"4-D \[B, C, H, W\], got shape \(8, 8\); reshape"),
        (torch.rand(1, 3, 0, 8), {}, r"is empty \(shape \(1, 3, 0, 8\): no pixels\)"),
        (
            torch.rand(1, 2, 8, 8),
            {"purpose": "GTASR"},
            r"RGB or RGBA \(3 or 4 channels\) for GTASR, got 2 channel\(s\)",
        ),
        (torch.rand(1, 8, 8, 4), {}, r"ComfyUI IMAGE is B×H×W×C: use x.movedim\(-1, 1\)$"),
        (
            torch.rand(1, 2, 8, 8),
            {"channels": (1, 5)},
            r"must have 1 or 5 channels, got 2.*if the tensor is BHWC",
        ),
        (
            torch.rand(1, 3, 8, 8).byte(),
            {"value_range": (-1.0, 1.0)},
            r"got torch.uint8; .* x.float\(\) / 127.5 - 1$",
        ),
        (torch.linspace(0, 3, 48).view(1, 3, 4, 4), {"check_values": True}, r"got \[0, 3\]; map \[-1, 1\]"),
        (
            torch.linspace(-1, 2, 48).view(1, 3, 4, 4),
            {"value_range": (-1.0, 1.0), "check_values": True},
            r"values must lie in \[-1, 1\].*map \[0, 1\] data with x \* 2 - 1$",
        ),
        (torch.rand(1, 3, 8, 20), {"multiple": 16}, r"size 8x20 is not a multiple of 16; pad to 16x32"),
    ],
)
def test_each_problem_names_its_fix(x: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        check_image(x, **kwargs)


def test_the_error_is_both_value_and_type_error() -> None:
    """The validators it replaced raised TypeError for a non-tensor or integer input, ValueError otherwise."""
    with pytest.raises(TypeError):
        check_image("not a tensor")
    with pytest.raises(ValueError):
        check_image(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
