"""nodes/common.py: the IMAGE adapters give ComfyUI's layout and never alias or change the caller's tensor."""

from __future__ import annotations

import pytest
import torch

from sr4k.nodes.common import from_comfy_image, to_comfy_image


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
