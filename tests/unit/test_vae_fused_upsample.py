"""F16 VAE nearest ×2 + 3×3 conv as a stride-2 transposed conv (``perf.fused_upsample_conv``): the fused tail rows
against ``upsample_conv_reference`` (both decode shifts, any chunking, both layouts), the Upsample layer and a
whole decode against the flag off, and the convolution FLOPs it removes.

Tolerances: float32, the fused path only regroups the sums (the 4×4 taps w1 + w2, w0 + w1 are rounded once), so
rows agree to 1e-6 relative and a whole decode to 1e-5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from small_vae import perturbed_vae
from sr4k.op4ksr_core.vae import layers as vae_layers
from sr4k.op4ksr_core.vae.model import F16VAE, set_vae_layout
from sr4k.op4ksr_core.vae.tail import (
    fuses_upsample_conv,
    upsample2x_conv_rows,
    upsample_conv_reference,
    upsample_conv_tail,
)
from sr4k.srkit import perf
from sr4k.srkit.upsample_conv import transposed_kernel
from sr4k.training.op4ksr.toy import TOY_F16_VAE

NHWC, NCHW = torch.channels_last, torch.contiguous_format


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def conv_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the convolutions (plain and transposed) ``fn`` runs."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return sum(v for op, v in fc.get_flop_counts()["Global"].items() if "convolution" in str(op))


def inputs(h: int, w: int, layout: torch.memory_format, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, h, w, generator=g).contiguous(memory_format=layout)
    return x, torch.randn(4, 6, 3, 3, generator=g), torch.randn(4, generator=g)


@pytest.mark.parametrize("layout", [NCHW, NHWC])
@pytest.mark.parametrize("shift", [0, 1])
@pytest.mark.parametrize("hw", [(5, 7), (6, 4), (1, 3)])
@pytest.mark.parametrize("chunk", [1, 3, 5, 100])
def test_fused_tail_equals_reference(
    layout: torch.memory_format, shift: int, hw: tuple[int, int], chunk: int
) -> None:
    x, w, b = inputs(*hw, layout, seed=hw[0] * 10 + chunk)
    ref = upsample_conv_reference(x, w, b, upscale=2, shift=shift)
    with perf.options(fused_upsample_conv=True):
        assert fuses_upsample_conv(2, w)
        out = upsample_conv_tail(x, w, b, upscale=2, shift=shift, chunk_rows=chunk)
    assert out.shape == ref.shape == (2, 4, 2 * hw[0], 2 * hw[1])
    assert rel(out, ref) < 1e-6
    assert out.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("shift", [0, 1])
def test_rows_anywhere(shift: int) -> None:
    x, w, b = inputs(7, 5, NHWC, seed=3)
    ref, kernel = upsample_conv_reference(x, w, b, upscale=2, shift=shift), transposed_kernel(w)
    for start, stop in [(0, 1), (13, 14), (0, 14), (2, 9), (5, 12)]:
        rows = upsample2x_conv_rows(x, kernel, b, shift=shift, row_start=start, row_stop=stop)
        assert rel(rows, ref[:, :, start:stop]) < 1e-6
        assert rows.stride(1) == 1  # channels innermost: a view of NHWC rows


def test_rows_reject_bad_requests() -> None:
    x, w, b = inputs(4, 4, NCHW)
    kernel = transposed_kernel(w)
    with pytest.raises(ValueError, match="rows"):
        upsample2x_conv_rows(x, kernel, b, shift=0, row_start=4, row_stop=9)
    with pytest.raises(ValueError, match="shift"):
        upsample2x_conv_rows(x, kernel, b, shift=2, row_start=0, row_stop=2)
    with pytest.raises(ValueError, match="transposed_kernel"):
        upsample2x_conv_rows(x, w, b, shift=0, row_start=0, row_stop=2)


def test_only_x2_and_3x3_fuse() -> None:
    # F8 VAE (upscale 1) and other kernels keep the plain chunked path, exact as before.
    g = torch.Generator().manual_seed(4)
    x, w5 = torch.randn(1, 3, 5, 6, generator=g), torch.randn(2, 3, 5, 5, generator=g)
    with perf.options(fused_upsample_conv=True):
        assert not fuses_upsample_conv(1, w5[:, :, :3, :3]) and not fuses_upsample_conv(2, w5)
        for up, w in ((1, w5[:, :, :3, :3].contiguous()), (2, w5)):
            out = upsample_conv_tail(x, w, None, upscale=up, shift=1, chunk_rows=4)
            assert rel(out, upsample_conv_reference(x, w, None, upscale=up, shift=1)) < 1e-6
    with perf.options(fused_upsample_conv=False):
        assert not fuses_upsample_conv(2, w5[:, :, :3, :3])


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("layout", [NCHW, NHWC])
def test_upsample_layer(chunked: bool, layout: torch.memory_format, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vae_layers, "UPSAMPLE_CHUNK_ELEMENTS", 1500)  # 6 output rows a chunk: 3 chunks
    layer = vae_layers.Upsample(6)
    x = torch.randn(2, 6, 7, 5, generator=torch.Generator().manual_seed(5)).contiguous(memory_format=layout)
    with torch.no_grad(), perf.options(perf.BASELINE):
        ref = layer(x)
    with torch.no_grad(), perf.options(vae_chunked_upsample=chunked, fused_upsample_conv=True):
        out = layer(x)
        fused = conv_flops(lambda: layer(x))
    with torch.no_grad(), perf.options(perf.BASELINE):
        plain = conv_flops(lambda: layer(x))
    assert rel(out, ref) < 1e-6 and out.is_contiguous(memory_format=layout)
    # Whole: 16 taps per source pixel against 9 per output pixel. Chunked: each 6-row chunk convolves its 3
    # source rows plus up to 2 halo rows (11 source rows for 7 here), still well under the plain count.
    if chunked:
        assert fused / plain == pytest.approx(16 / 36 * 11 / 7, rel=1e-9)
    else:
        assert fused / plain == pytest.approx(16 / 36, rel=1e-9)


@pytest.fixture(scope="module")
def toy_vae() -> F16VAE:
    return perturbed_vae(TOY_F16_VAE)


@pytest.mark.parametrize("mode", ["aligned", "partitioned"])
@pytest.mark.parametrize("base", ["defaults", "unchunked", "channels_last"])
def test_decode_matches_flag_off(
    toy_vae: F16VAE, mode: str, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vae_layers, "UPSAMPLE_CHUNK_ELEMENTS", 3000)  # the chunked upsamplers really chunk
    opts = {
        "defaults": perf.PerfOptions(),
        "unchunked": dataclasses.replace(perf.PerfOptions(), vae_chunked_upsample=False),
        "channels_last": dataclasses.replace(
            perf.PerfOptions(), vae_channels_last=True, nhwc_group_norm="on"
        ),
    }[base]
    latent = torch.randn(1, 16, 5, 3, generator=torch.Generator().manual_seed(6))
    set_vae_layout(toy_vae, opts.vae_channels_last)
    try:
        with torch.no_grad(), perf.options(opts):
            ref = toy_vae.decode(latent, decode_mode=mode, chunk_rows=7)
        with torch.no_grad(), perf.options(opts, fused_upsample_conv=True):
            out = toy_vae.decode(latent, decode_mode=mode, chunk_rows=7)
    finally:
        set_vae_layout(toy_vae, False)
    assert out.shape == ref.shape == (1, 3, 80, 48)
    assert rel(out, ref) < 1e-5


def test_decoder_conv_flops(toy_vae: F16VAE) -> None:
    # One chunk per map, so the fused count is exact: every x2 + 3x3 conv (three upsamplers, conv_out) drops to
    # 16 taps per source pixel = 4/9 of its plain FLOPs; all other convs are unchanged.
    latent = torch.randn(1, 16, 4, 6)
    with torch.no_grad(), perf.options(vae_chunked_upsample=False):
        plain = conv_flops(lambda: toy_vae.decode(latent, chunk_rows=10**6))
        with perf.options(fused_upsample_conv=True):
            fused = conv_flops(lambda: toy_vae.decode(latent, chunk_rows=10**6))
    c = TOY_F16_VAE.block_out_channels[0]  # 16 everywhere in the toy
    # plain FLOPs of the x2 + conv layers: 2 * C_in * C_out * 9 per output pixel.
    up_pixels = sum((4 * 2**k) * (6 * 2**k) for k in (1, 2, 3))  # upsampler outputs: 8x12, 16x24, 32x48
    fused_part = 2 * 9 * (c * c * up_pixels + c * 3 * 64 * 96)  # + conv_out on the 64x96 image
    assert plain - fused == pytest.approx(fused_part * 5 / 9, rel=1e-9)
    assert fused / plain < 0.86  # the toy decode's conv FLOPs drop by 15.4 % (FLUX_F16 at 4096²: 15.6 %)


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
