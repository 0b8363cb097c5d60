"""benchmarks/peak_tracker.py and peak_memory.py: the live/peak accounting against closed forms, and the same
peak on the CPU with real tensors as on the meta device for the tiny GTASR and the toy F16 VAE."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import peak_memory as pm  # noqa: E402  (a script folder, not a package)
from peak_tracker import PeakTracker, round_block  # noqa: E402

from perf_pins import NCHW_UNFUSED  # noqa: E402
from sr4k.gtasr_core.config import TINY  # noqa: E402
from sr4k.srkit import perf  # noqa: E402
from sr4k.training.op4ksr.toy import TOY_F16_VAE  # noqa: E402


def test_round_block_matches_the_caching_allocator() -> None:
    assert [round_block(n) for n in (0, 1, 512, 513, 4000)] == [0, 512, 512, 1024, 4096]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_hand_built_sequence_against_the_closed_form(device: str) -> None:
    with PeakTracker(device) as t:
        a = torch.empty(1000, device=device)  # 4000 B -> 4096
        b = a * 2  # 4096 more: 8192 live
        view = b[10:]  # a view: shares b's storage
        b.add_(1)  # in place: nothing new
        del a  # 4096
        c = torch.empty(100, dtype=torch.float64, device=device)  # 800 -> 1024: 5120
        d = torch.cat([b, view])  # 7960 -> 8192: 13312, the peak
        assert t.live_bytes == 13312
        del b, view, d  # c alone: 1024
        assert t.live_bytes == 1024
        c.resize_(1000)  # the storage grows in place: 8000 -> 8192
        assert t.live_bytes == 8192
        e = torch.empty(0, device=device)  # no block
        del c
    assert (t.peak_bytes, t.live_bytes, e.numel()) == (13312, 0, 0)
    assert t.allocs == 5  # a, b, c, d and the empty e
    assert sorted(x.nbytes for x in t.peak_snapshot) == [1024, 4096, 8192]  # c, b, d


def test_tensors_from_before_and_other_devices_are_not_counted() -> None:
    x = torch.empty(1000, device="meta")
    with PeakTracker("meta") as t:
        y = torch.empty(1000)  # CPU
        x.mul_(2)
        del x  # made before: never counted, so not subtracted either
    assert (t.peak_bytes, t.live_bytes, y.numel()) == (0, 0, 1000)


def test_module_paths_and_a_workspace_model() -> None:
    net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 4)).to("meta")  # weights: made before

    def scratch(func: object, args: object, kwargs: object, out: object) -> int:
        return 10_000 if func is torch.ops.aten.relu.default else 0

    with PeakTracker("meta", root=net, workspace=scratch) as t:
        with t.label("inputs"):
            x = torch.empty(8, 4, device="meta")
        net(x)
    # the ReLU's output (8 x 256 fp32 = 8192 B) with the Linear output it read, x, and the scratch
    assert t.peak_bytes == 512 + 8192 + 8192
    assert t.peak_total == t.peak_bytes + 10_240 and t.peak_total_path == "1"
    assert {a.path for a in t.peak_snapshot} == {"inputs", "0", "1"}


@pytest.mark.parametrize("lr_px", [32, 48])
def test_tiny_gtasr_peak_is_the_same_on_cpu_and_meta(lr_px: int) -> None:
    """Real fp32 tensors vs meta ones through the whole upscale (lr on the CPU, cold noise). The CPU run also
    counts x_t, which upscale makes on lr's device (the host) and holds through the network: one HR float32 field
    more than on meta, where it stays on the host, untracked. Nothing else differs."""
    peaks = []
    for device in ("cpu", "meta"):
        net = pm.gtasr_net(TINY, device, torch.float32)
        with pm.cuda_like():
            t = pm.gtasr_peak(net, lr_px, NCHW_UNFUSED, warmup=0, workspace=None)
        peaks.append(t.peak_bytes)
        assert t.peak_path.startswith("model.")  # inside the network, not in upscale's buffers
    x_t = 3 * (4 * lr_px) ** 2 * 4
    assert peaks[0] == peaks[1] + x_t and peaks[1] > 0


def test_toy_vae_decode_peak_is_the_same_on_cpu_and_meta() -> None:
    peaks = [
        pm.vae_decode_peak(
            pm.vae_model(TOY_F16_VAE, d, torch.float32), 64, perf.PerfOptions(), 0, None
        ).peak_bytes
        for d in ("cpu", "meta")
    ]
    assert peaks[0] == peaks[1] > 0


def test_cudnn_workspace_model_counts_half_nchw_convolutions_only() -> None:
    x = torch.empty(1, 8, 16, 16, device="meta", dtype=torch.bfloat16)
    w = torch.empty(4, 8, 3, 3, device="meta", dtype=torch.bfloat16)
    conv = torch.ops.aten.convolution.default
    args = (x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    out = conv(*args)
    assert pm.cudnn_nchw_workspace(conv, args, {}, out) == (8 + 4) * 256 * 2
    cl = (x.contiguous(memory_format=torch.channels_last), *args[1:])
    assert pm.cudnn_nchw_workspace(conv, cl, {}, out) == 0
    assert pm.cudnn_nchw_workspace(conv, (x.float(), *args[1:]), {}, out) == 0


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
