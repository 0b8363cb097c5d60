"""GTASR peak reductions of issue #11 (gtasr_core/unet.py): the output is unchanged and the freed tensors are
really gone at the point where the network peaks (the Swin layer), counted with benchmarks/peak_tracker.py."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import peak_memory as pm  # noqa: E402  (a script folder, not a package)
from peak_tracker import PeakTracker  # noqa: E402

from gtasr_support import deterministic_init_  # noqa: E402
from sr4k.gtasr_core.config import TINY, encoder_plan  # noqa: E402
from sr4k.gtasr_core.unet import UNetBlock  # noqa: E402
from sr4k.srkit import perf  # noqa: E402


def _swin_block() -> UNetBlock:
    spec = next(s for s in encoder_plan(TINY) if s.swin_window)
    return deterministic_init_(UNetBlock(spec, TINY)).eval()


def _reference(block: UNetBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """The EDM block written out (the code before this change, with every temporary kept)."""
    s = math.sqrt(0.5)
    h = block.conv0(F.silu(block.norm0(x)))
    h = F.silu(block.norm1(h + block.affine(emb)[:, :, None, None].to(h.dtype)))
    h = block.conv1(h)
    y = (h + (block.skip(x) if block.skip is not None else x)) * s
    return block.swin_layer(y) * s


def test_swin_block_output_is_bit_identical_to_the_written_out_block() -> None:
    block = _swin_block()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, block.in_channels, 16, 16, generator=g)
    emb = torch.randn(2, TINY.emb_channels, generator=g)
    with torch.no_grad():
        assert torch.equal(block(x, emb), _reference(block, x, emb))


def test_conv1_output_is_freed_before_the_swin_layer() -> None:
    block = _swin_block().to("meta")
    x = torch.empty(1, block.in_channels, 64, 64, device="meta")
    emb = torch.empty(1, TINY.emb_channels, device="meta")
    one_map = block.out_channels * 64 * 64 * 4
    at_swin: list[int] = []
    with PeakTracker("meta") as t, torch.no_grad():
        block.swin_layer.register_forward_pre_hook(lambda *_: at_swin.append(t.live_bytes))
        block(x, emb)
    # Alive when the Swin layer starts: its input (one map) and the [1, C] embedding projection; with conv1's
    # output still held it would be two maps.
    assert one_map <= at_swin[0] < 1.1 * one_map


def test_tiny_upscale_peak_drops_by_the_freed_maps() -> None:
    """Whole upscale on meta in bf16, head in 8-row slabs, so that the tiny network peaks where the real one
    does (Swin window attention, SDPA's math path in fp32): the peak drops by exactly the conv1 output and the
    Swin norm1 output that are now freed before the attention, against the old liveness re-created by hooks
    (peak_memory.hold_swin_block_h), the comparison the benchmark reports."""
    net = pm.gtasr_net(TINY, "meta", torch.bfloat16)
    with pm.cuda_like(), perf.options(gtasr_head_rows=8) as opts:
        with pm.hold_swin_block_h(net):
            before = pm.gtasr_peak(net, 64, opts, warmup=0, workspace=None)
        after = pm.gtasr_peak(net, 64, opts, warmup=0, workspace=None)
    assert ".swin_layer." in after.peak_path and after.peak_path == before.peak_path
    block = net.get_submodule(after.peak_path.split(".swin_layer.")[0])
    embed = block.swin_layer.blocks[0].norm1.num_channels
    # one bf16 map at LR size each: UNetBlock's conv1 output, SwinBlock's norm1 output
    assert before.peak_bytes - after.peak_bytes == (block.out_channels + embed) * 64 * 64 * 2


def test_memory_model_covers_the_meta_count() -> None:
    """gtasr_core.memory must not underestimate: the released network's count (with the modelled cuDNN scratch)
    at LR 512, where the peak is the same Swin attention as at LR 1024 (the working set is linear in pixels)."""
    from sr4k.gtasr_core.config import RELEASED
    from sr4k.gtasr_core.memory import upscale_memory

    net = pm.gtasr_net(RELEASED, "meta", torch.bfloat16)
    with pm.cuda_like():
        t = pm.gtasr_peak(net, 512, perf.PerfOptions())
    assert ".swin_layer." in t.peak_total_path
    assert t.peak_total <= upscale_memory(net, 512, 512, slabbed_head=True)


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
