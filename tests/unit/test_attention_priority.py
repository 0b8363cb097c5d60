"""srkit/attention_priority.py: when cuDNN attention goes first, and that the pinned order is really SDPA's inside
the block and restored after (torch's own priority list; SDPA still runs through the fallbacks on the CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from sr4k.srkit import perf
from sr4k.srkit.attention_priority import attention_priority, cudnn_first, prefers_cudnn


@pytest.mark.parametrize(
    ("device", "capability", "expected"),
    [("cuda", (9, 0), True), ("cuda", (10, 0), True), ("cuda", (8, 9), False), ("cpu", None, False)],
)
def test_prefers_cudnn_on_hopper_and_newer(
    device: str, capability: tuple[int, int] | None, expected: bool
) -> None:
    assert prefers_cudnn(device, capability) is expected
    with perf.options(cudnn_attention_first=False):
        assert not prefers_cudnn(device, capability)


def test_cudnn_first_sets_and_restores_the_priority() -> None:
    before = torch._C._get_sdp_priority_order()
    q = torch.randn(1, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    ref = F.scaled_dot_product_attention(q, q, q)
    with cudnn_first():
        assert torch._C._get_sdp_priority_order()[0] == int(SDPBackend.CUDNN_ATTENTION)
        out = F.scaled_dot_product_attention(q, q, q)  # cuDNN is CUDA-only: the CPU falls through the list
    assert torch._C._get_sdp_priority_order() == before
    assert torch.allclose(out, ref, atol=1e-6)


def test_attention_priority_is_a_no_op_off_cuda() -> None:
    before = torch._C._get_sdp_priority_order()
    with attention_priority("cpu"):
        assert torch._C._get_sdp_priority_order() == before
