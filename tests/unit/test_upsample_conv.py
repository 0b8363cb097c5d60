"""srkit/upsample_conv.py: nearest ×2 + conv as one transposed convolution (3×3) or conv-then-×2 (1×1), against
the upsample-then-convolve reference; its multiply-add count; and the GTASR paths that use it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gtasr_support import TINY, deterministic_init_
from sr4k.gtasr_core import build, upscale
from sr4k.srkit import perf
from sr4k.srkit.upsample_conv import nearest2x_then_conv, transposed_kernel, upsample2x_conv


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("k", [3, 1])
@pytest.mark.parametrize("hw", [(7, 5), (16, 16), (1, 3)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_matches_upsample_then_conv(k: int, hw: tuple[int, int], layout: torch.memory_format) -> None:
    g = torch.Generator().manual_seed(k * 100 + hw[0])
    x = torch.randn(2, 6, *hw, generator=g).contiguous(memory_format=layout)
    w = torch.randn(4, 6, k, k, generator=g).contiguous(memory_format=layout)
    b = torch.randn(4, generator=g)
    ref, out = nearest2x_then_conv(x, w, b), upsample2x_conv(x, w, b)
    assert out.shape == ref.shape == (2, 4, 2 * hw[0], 2 * hw[1])
    assert rel(out, ref) < 1e-6  # float32 summation order only (measured ~1.6e-7)
    assert out.is_contiguous(memory_format=layout)


def test_bf16_error_is_that_of_bf16_itself() -> None:
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(1, 64, 24, 24, generator=g), torch.randn(64, 64, 3, 3, generator=g) / 24
    exact = nearest2x_then_conv(x.double(), w.double(), None)
    plain = nearest2x_then_conv(x.bfloat16(), w.bfloat16(), None)
    fused = upsample2x_conv(x.bfloat16(), w.bfloat16(), None)
    # the summed taps are rounded once more; the result stays within twice the plain bf16 path's own error
    assert rel(fused, exact) < 2 * rel(plain, exact) and rel(fused, exact) < 1e-2


def conv_flops(fn: Callable[[], object]) -> int:
    """Multiply-add FLOPs of the convolutions ``fn`` runs (the kernel transform's small einsum left out)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return sum(v for op, v in fc.get_flop_counts()["Global"].items() if "convolution" in str(op))


def test_multiply_adds_drop_to_four_ninths() -> None:
    x, w = torch.randn(1, 32, 20, 20), torch.randn(32, 32, 3, 3)
    plain = conv_flops(lambda: nearest2x_then_conv(x, w, None))
    fused = conv_flops(lambda: upsample2x_conv(x, w, None))
    assert plain == 2 * 32 * 32 * 9 * 40 * 40 and fused / plain == pytest.approx(16 / 36, rel=1e-6)


def test_rejects_other_kernels() -> None:
    with pytest.raises(ValueError, match="1x1 or 3x3"):
        upsample2x_conv(torch.zeros(1, 2, 4, 4), torch.zeros(2, 2, 5, 5), None)
    with pytest.raises(ValueError, match=r"\[C_out, C_in, 3, 3\]"):
        transposed_kernel(torch.zeros(2, 2, 5, 5))


@pytest.mark.parametrize("head_rows", [0, 3])
def test_gtasr_up_blocks_and_head_match(head_rows: int) -> None:
    net = deterministic_init_(build(TINY))
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    base = dataclasses.replace(perf.PerfOptions(), gtasr_head_rows=head_rows, fused_upsample_conv=False)
    with perf.options(base):
        ref = upscale(net, lr, seed=3)
    with perf.options(base, fused_upsample_conv=True):
        out = upscale(net, lr, seed=3)
        fused = conv_flops(lambda: upscale(net, lr, seed=3))
    assert rel(out, ref) < 1e-5
    with perf.options(base):
        plain = conv_flops(lambda: upscale(net, lr, seed=3))
    assert fused < 0.9 * plain  # the head and the up blocks really took the cheaper path
