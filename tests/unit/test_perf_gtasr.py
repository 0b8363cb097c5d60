"""Issue #11 optimisations on the GTASR side against their unoptimised twins (CPU, tiny network), and the
counter-based noise against a scalar reference implementation of its stated semantics."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gtasr_support import TINY, deterministic_init_
from sr4k.gtasr_core import GTASRNet, build, upscale
from sr4k.gtasr_core.layers import FP32GroupNorm
from sr4k.gtasr_core.noise import noise_field
from sr4k.srkit import counter_normal as cn
from sr4k.srkit import perf


@pytest.fixture(scope="module")
def net() -> GTASRNet:
    return deterministic_init_(build(TINY))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _lr(h: int = 24, w: int = 32) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "changes",
    [
        dict(gtasr_device_input=True, pinned_output=True),
        dict(gtasr_channels_last=True),
        dict(gtasr_head_rows=5),
        dict(gtasr_head_rows=1),
        dict(gtasr_box_resample=True),
        dict(gtasr_attn_windows=5),  # 48 level-0 windows of 4x4 at LR 24x32, shifted and not
        "all",
    ],
)
def test_gtasr_options_match_baseline(net: GTASRNet, changes: object) -> None:
    lr = _lr()
    with perf.options(perf.BASELINE):
        ref = upscale(net, lr, seed=3)
    opts = (
        dataclasses.replace(perf.PerfOptions(), gtasr_head_rows=5)
        if changes == "all"
        else dataclasses.replace(perf.BASELINE, **changes)
    )  # type: ignore[arg-type]
    with perf.options(opts):
        out = upscale(net, lr, seed=3)
    with perf.options(perf.BASELINE):
        upscale(net, lr[..., :8, :8], seed=0)  # puts the weights back in the default layout
    assert out.shape == ref.shape and rel(out, ref) < 1e-5  # measured <= 7e-7 (conv summation order)


def test_native_groupnorm_error_in_bf16() -> None:
    """bf16 activations: the native kernel (fp32 statistics, bf16 output) against the fp32 copy path."""
    norm = FP32GroupNorm(8, 64, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_(1, 0.1)
        norm.bias.normal_(0, 0.1)
    x = (torch.randn(2, 64, 16, 16, generator=torch.Generator().manual_seed(5)) * 3 + 1).bfloat16()
    norm.requires_grad_(False)
    with perf.options(gtasr_native_groupnorm=False):
        ref = norm(x)
    with perf.options(gtasr_native_groupnorm=True):
        out = norm(x)
    ref64 = torch.nn.functional.group_norm(x.double(), 8, norm.weight.double(), norm.bias.double(), 1e-6)
    # Both round the output to bf16 (rel. 2^-9 = 2e-3 per value); the native one also the affine step.
    assert rel(out, ref64) < 6e-3 and rel(ref, ref64) < 6e-3 and rel(out, ref) < 6e-3
    with perf.options(gtasr_native_groupnorm=True):  # fp32 inputs always take the fp32 path
        assert torch.equal(
            norm(x.float()), torch.nn.functional.group_norm(x.float(), 8, norm.weight, norm.bias, 1e-6)
        )


def _reference_value(seed: int, i: int) -> float:
    """counter_normal's value at flat index i, in scalar Python (ints and IEEE doubles), from the docstring."""
    k0, k1 = cn.seed_keys(seed)
    r = cn._mix_int(cn._mix_int((i & 0xFFFFFFFF) ^ k0) ^ (i >> 32) ^ k1)
    m = r & 0x7FFFFFFF
    v = (2 * m + 1) * 2.0**-32
    mant, e = math.frexp(v)
    pos = (mant - 0.5) * (2 * cn.SEGMENTS)
    seg = math.floor(pos)
    table = cn._table_cpu()
    z0, z1 = float(table[-e, seg]), float(table[-e, seg + 1])
    z = float(torch.tensor(z0 + (z1 - z0) * (pos - seg), dtype=torch.float64).float())
    return -z if r >> 31 else z


def test_counter_normal_matches_reference_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    shape, seed = (2, 3, 17, 19), 2**40 + 12345
    z = cn.counter_normal(shape, seed)
    flat = z.flatten()
    for i in (0, 1, 2, 100, 977, flat.numel() - 1):
        assert flat[i].item() == _reference_value(seed, i)  # bit for bit
    # Indices past 2^32 (the hash's second word) and every one of a random sample.
    index = torch.cat(
        [torch.tensor([2**32 - 1, 2**32, 2**33 + 5, 2**40 + 3]), torch.randint(0, 2**34, (300,))]
    )
    values = cn._values(index, *cn.seed_keys(seed), *cn._segments_cpu())
    assert [v.item() for v in values] == [_reference_value(seed, int(i)) for i in index]
    monkeypatch.setattr(cn, "CPU_CHUNK", 101)  # chunk boundaries do not change a single bit
    assert torch.equal(cn.counter_normal(shape, seed), z)
    assert torch.equal(cn.counter_normal(shape, seed), z) and not torch.equal(cn.counter_normal(shape, 1), z)
    assert cn.counter_normal(shape, -1).shape == shape


def test_counter_normal_compute_device() -> None:
    """CPU and CUDA compute in place; devices without float64 (Apple MPS) or with uneven op support compute on
    the CPU, whose bits then travel unchanged."""
    for name in ("cpu", "cuda", "cuda:1", "meta"):
        assert cn._compute_device(torch.device(name)) == torch.device(name)
    for name in ("mps", "xpu", "privateuseone"):
        assert cn._compute_device(torch.device(name)) == torch.device("cpu")
    assert cn._chunk(torch.device("cpu")) == cn.CPU_CHUNK and cn._chunk(torch.device("cuda")) == cn.CHUNK


def test_counter_normal_is_standard_normal() -> None:
    z = cn.counter_normal((1 << 18,), 7).double()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    probs = torch.tensor([0.001, 0.02, 0.16, 0.5, 0.84, 0.98, 0.999], dtype=torch.float64)
    assert (torch.quantile(z, probs) - torch.special.ndtri(probs)).abs().max() < 0.05
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1]) < 0.01  # neighbours uncorrelated
    # The table's linear interpolation against the exact inverse at random tail probabilities.
    v = (
        torch.rand(10_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        .pow(8)
        .clamp_min(2.0**-32)
    )
    mant, e = torch.frexp(v)
    pos = (mant - 0.5) * (2 * cn.SEGMENTS)
    t = cn._table_cpu()
    seg = pos.floor().long()
    approx = t[-e, seg] + (t[-e, seg + 1] - t[-e, seg]) * (pos - seg)
    assert (approx - (-torch.special.ndtri(v / 2))).abs().max() < 1e-5


def test_noise_kinds(net: GTASRNet) -> None:
    shape = (1, 3, 8, 8)
    legacy = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    assert torch.equal(noise_field(shape, 9, "torch"), legacy)
    assert torch.equal(noise_field(shape, 9, "counter"), cn.counter_normal(shape, 9))
    with pytest.raises(ValueError, match="noise="):
        noise_field(shape, 9, "gpu")  # type: ignore[arg-type]
    assert torch.equal(noise_field(shape, 9), cn.counter_normal(shape, 9))  # the default stream
    lr = _lr(16, 16)
    a, b = upscale(net, lr, seed=1, noise="counter"), upscale(net, lr, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, upscale(net, lr, seed=1, noise="torch"))


def test_the_torch_field_is_cached_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a device, the cache lives in host memory (a GPU copy would outlive the node, unseen by ComfyUI) and a
    field too large to keep (> 256 MB) is not kept; a CPU run keeps none (it would add to the network's peak)."""
    from sr4k.gtasr_core import noise

    shape = (1, 3, 8, 8)
    legacy = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    noise.clear_noise_cache()
    assert torch.equal(noise_field(shape, 5, "torch"), legacy) and not noise._CACHE
    assert noise_field(shape, 5, "torch", "meta").device.type == "meta"
    ((key, cached),) = noise._CACHE.items()
    assert key == (5, shape) and cached.device.type == "cpu" and torch.equal(cached, legacy)
    monkeypatch.setattr(noise, "_CACHE_MAX_VALUES", 100)  # stands for 256 MB: 8x8x3 = 192 values is too many
    noise.clear_noise_cache()
    assert noise_field(shape, 6, "torch", "meta").shape == shape and not noise._CACHE


def test_memory_estimates_cover_the_h200_measurement() -> None:
    """upscale_memory against the working memory measured on an H200 (gtasr_core/memory.py docstring)."""
    from sr4k.gtasr_core import RELEASED
    from sr4k.gtasr_core.memory import upscale_memory

    with torch.device("meta"):
        released = GTASRNet(RELEASED).to(torch.bfloat16)
    gib = 2**30
    for slabs, measured in ((False, 25.80), (True, 6.67)):
        est = upscale_memory(released, 1024, 1024, slabbed_head=slabs) / gib
        assert measured <= est <= 1.25 * measured, (slabs, est)
    assert 1.84 <= upscale_memory(released, 512, 512, slabbed_head=True) / gib <= 1.25 * 1.84
    with perf.options(gtasr_head_rows=0):
        assert upscale_memory(released, 1024, 1024) == upscale_memory(
            released, 1024, 1024, slabbed_head=False
        )


def test_tiled_upscale_with_every_candidate_matches_baseline(net: GTASRNet) -> None:
    """The tiled path (tile 16, overlap 8) with every unmeasured candidate on at once: channels_last with the
    layout-keeping GroupNorm forced, fused upsample convs, windows attended 3 at a time."""
    lr = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with perf.options(perf.BASELINE):
        ref = upscale(net, lr, seed=3, tile=16, overlap=8)
    on = dict(gtasr_channels_last=True, nhwc_group_norm="on", fused_upsample_conv=True, gtasr_attn_windows=3)
    with perf.options(perf.PerfOptions(), **on):
        out = upscale(net, lr, seed=3, tile=16, overlap=8)
    with perf.options(perf.BASELINE):
        upscale(net, lr[..., :8, :8], seed=0)  # puts the weights back in the default layout
    assert out.shape == ref.shape and rel(out, ref) < 1e-5  # measured 4.5e-7
