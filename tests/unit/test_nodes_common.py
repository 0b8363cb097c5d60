"""nodes/common.py: the IMAGE adapters give ComfyUI's layout and never alias or change the caller's tensor."""

from __future__ import annotations

import pytest
import torch

from sr4k.nodes.common import as_comfy_image, from_comfy_image, to_comfy_image


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_to_comfy_image_is_a_clamped_contiguous_copy(dtype: torch.dtype) -> None:
    x = (torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2).to(dtype)
    before = x.clone()
    out = to_comfy_image(x)
    assert out.shape == (2, 5, 7, 3) and out.dtype == torch.float32 and out.is_contiguous()
    assert torch.equal(out, x.float().movedim(1, -1).clamp(0, 1))
    assert torch.equal(x, before)


def test_to_comfy_image_of_an_nhwc_view_leaves_it_alone() -> None:
    """A node's IMAGE seen as BCHW (``from_comfy_image``) is already BHWC in memory: the result is still new."""
    image = torch.rand(1, 4, 6, 3, generator=torch.Generator().manual_seed(1)) * 2 - 0.5
    before = image.clone()
    out = to_comfy_image(from_comfy_image(image))
    assert out.data_ptr() != image.data_ptr()
    assert torch.equal(out, before.clamp(0, 1)) and torch.equal(image, before)


def test_as_comfy_image_of_an_nhwc_result_is_its_view_clamped() -> None:
    """A result stored NHWC (GTASR's output for an IMAGE input) is handed over without a copy."""
    image = torch.rand(2, 4, 6, 3, generator=torch.Generator().manual_seed(2)) * 2 - 0.5
    expected = to_comfy_image(from_comfy_image(image))
    out = as_comfy_image(from_comfy_image(image))
    assert out.data_ptr() == image.data_ptr() and out.is_contiguous() and out.shape == (2, 4, 6, 3)
    assert torch.equal(out, expected)


@pytest.mark.parametrize(
    "make",
    [lambda x: x, lambda x: x.bfloat16(), lambda x: from_comfy_image(x.movedim(1, -1).contiguous())[:, :2]],
    ids=["nchw", "bf16", "nhwc channels slice"],
)
def test_as_comfy_image_copies_what_is_not_an_nhwc_float_result(make) -> None:
    x = make(torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(3)) * 1.4 - 0.2)
    before = x.clone()
    out = as_comfy_image(x)
    assert out.data_ptr() != x.data_ptr() and out.is_contiguous() and out.dtype == torch.float32
    assert torch.equal(out, to_comfy_image(before)) and torch.equal(x, before)
