"""``perf.gtasr_box_resample``: GTASR's x2 resampling with the [1, 1] filter as pooling / nearest interpolation,
against the depthwise (transposed) convolutions it replaces, and the ops that actually run."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sr4k.gtasr_core.layers import ResampleConv2d
from sr4k.srkit import perf


class _Ops(TorchDispatchMode):
    """Names of the ATen ops run inside the block, with the ``groups`` of every convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.conv_groups: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        self.names.append(name)
        if name == "convolution":
            self.conv_groups.append(int(args[-1]))
        return func(*args, **(kwargs or {}))


def _run(layer: ResampleConv2d, x: torch.Tensor, box: bool) -> tuple[torch.Tensor, _Ops]:
    with perf.options(gtasr_box_resample=box), torch.no_grad(), _Ops() as ops:
        out = layer(x)
    return out, ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernel", [1, 3])
def test_box_up_is_bit_identical_and_uses_nearest_interpolation(dtype: torch.dtype, kernel: int) -> None:
    torch.manual_seed(0)
    layer = ResampleConv2d(8, 6, kernel, up=True).to(dtype)
    x = torch.randn(1, 8, 5, 7).to(dtype)
    ref, conv_ops = _run(layer, x, box=False)
    out, ops = _run(layer, x, box=True)
    assert out.shape == ref.shape == (1, 6, 10, 14)
    assert torch.equal(out, ref)
    assert 8 in conv_ops.conv_groups  # the reference really is a depthwise transposed convolution
    assert ops.conv_groups == [1] and "upsample_nearest2d" in ops.names  # only the layer's own conv is left


@pytest.mark.parametrize("size", [(6, 8), (7, 9)])  # odd sizes: both paths drop the last row / column
def test_box_down_equals_the_depthwise_convolution(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    layer = ResampleConv2d(8, 6, 3, down=True)
    x = torch.randn(2, 8, *size)
    ref, conv_ops = _run(layer, x, box=False)
    out, ops = _run(layer, x, box=True)
    assert out.shape == ref.shape == (2, 6, size[0] // 2, size[1] // 2)
    torch.testing.assert_close(
        out, ref, rtol=1e-6, atol=1e-6
    )  # fp32: the same four values, summed in another order
    assert 8 in conv_ops.conv_groups
    assert ops.conv_groups == [1] and "avg_pool2d" in ops.names


def test_bf16_down_matches_to_the_last_bit_almost_everywhere() -> None:
    torch.manual_seed(2)
    layer = ResampleConv2d(16, 16, 1, down=True).bfloat16()
    x = torch.randn(1, 16, 64, 64).bfloat16()
    ref, _ = _run(layer, x, box=False)
    out, _ = _run(layer, x, box=True)
    assert (out != ref).float().mean() < 1e-3  # sums of four bf16 values are exact in fp32: at most rare ties


def test_other_filters_keep_the_convolution() -> None:
    """A non-box filter (EDM's [1, 3, 3, 1]) is no pooling: the switch must not change it."""
    torch.manual_seed(3)
    layer = ResampleConv2d(4, 4, 3, up=True, resample_taps=(1.0, 3.0, 3.0, 1.0))
    assert not layer.box
    x = torch.randn(1, 4, 6, 6)
    ref, _ = _run(layer, x, box=False)
    out, ops = _run(layer, x, box=True)
    assert torch.equal(out, ref) and 4 in ops.conv_groups


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
