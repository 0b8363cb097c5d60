"""The layout-keeping GroupNorm (srkit/group_norm.py): its maths against ``F.group_norm`` in float64, its
precision in bf16 and at a large mean, its dispatch (the meta device's GroupNorm returns NCHW, as CUDA's does in
torch 2.11), and the real GTASR and F16 VAE networks running it at every norm in channels_last."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gtasr_support import deterministic_init_
from small_vae import perturbed_vae
from sr4k.gtasr_core import build, upscale
from sr4k.gtasr_core.config import TINY
from sr4k.gtasr_core.noise import set_layout
from sr4k.op4ksr_core.vae.model import set_vae_layout
from sr4k.srkit import perf
from sr4k.srkit.group_norm import (
    LayoutGroupNorm,
    group_norm,
    group_norm_nhwc,
    is_channels_last,
    native_keeps_channels_last,
)
from sr4k.training.op4ksr.toy import TOY_F16_VAE

CL = torch.channels_last


def _map(shape: tuple[int, ...], seed: int, mean: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # per-channel offsets and scales, so groups really differ
    x = torch.randn(shape, generator=g) * (0.5 + torch.rand(shape[1], 1, 1, generator=g)) + mean
    return x.contiguous(memory_format=CL)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,groups", [((2, 32, 12, 20), 8), ((1, 24, 7, 5), 24), ((1, 16, 9, 9), 1)])
def test_matches_float64_reference(shape: tuple[int, ...], groups: int, affine: bool) -> None:
    x = _map(shape, 0, mean=0.3)
    w = torch.randn(shape[1], generator=torch.Generator().manual_seed(1)) if affine else None
    b = torch.randn(shape[1], generator=torch.Generator().manual_seed(2)) if affine else None
    ref = F.group_norm(
        x.double(), groups, None if w is None else w.double(), None if b is None else b.double(), 1e-6
    )
    out = group_norm_nhwc(x, groups, w, b, 1e-6)
    assert out.dtype == x.dtype and is_channels_last(out)
    assert (out.double() - ref).abs().max() < 2e-5


def test_bf16_output_is_the_fp32_result_rounded_once() -> None:
    x = _map((1, 64, 32, 48), 3, mean=0.5).to(torch.bfloat16)
    w, b = torch.rand(64) + 0.5, torch.randn(64)
    ref = F.group_norm(x.double(), 32, w.double(), b.double(), 1e-6)
    out = group_norm_nhwc(x, 32, w, b, 1e-6)
    assert out.dtype == torch.bfloat16 and is_channels_last(out)
    # one rounding to bf16 (8 significant bits): within half an ulp of the exact value, 2^-8 relative, plus
    # float32 slack; and bit-equal to the exact value rounded except where float32 sits on a rounding tie
    err = (out.double() - ref).abs() / ref.abs().clamp_min(2**-6)
    assert err.max() < 2**-8 * 1.01
    assert (out == ref.to(torch.bfloat16)).double().mean() > 0.999


def test_gradients_match_native_group_norm() -> None:
    """With autograd on (the F16 decoder trainer in channels_last) the out-of-place branch runs; its gradients
    with respect to the input, the scale and the shift equal F.group_norm's."""
    x = _map((2, 16, 6, 10), 6, mean=0.2).requires_grad_()
    w, b = (torch.rand(16) + 0.5).requires_grad_(), torch.randn(16).requires_grad_()
    g = torch.randn(2, 16, 6, 10, generator=torch.Generator().manual_seed(7))
    grads = []
    for fn in (group_norm_nhwc, F.group_norm):
        out = fn(x, 4, w, b, 1e-6)
        grads.append(torch.autograd.grad((out * g).sum(), (x, w, b)))
    assert is_channels_last(group_norm_nhwc(x, 4, w, b, 1e-6))
    for mine, ref in zip(*grads, strict=True):
        assert (mine - ref).abs().max() < 1e-5


def test_large_mean_keeps_float32_precision() -> None:
    # E[x²] - mean² is the form that loses precision when |mean| >> std; at mean = 30 std it must stay ~1e-5.
    x = _map((1, 32, 64, 64), 4, mean=30.0)
    ref = F.group_norm(x.double(), 8, None, None, 1e-6)
    out = group_norm_nhwc(x, 8, None, None, 1e-6)
    assert (out.double() - ref).abs().max() < 1e-3


def test_rejects_bad_groups_and_modes() -> None:
    with pytest.raises(ValueError, match="do not split into 5 groups"):
        group_norm_nhwc(torch.zeros(1, 8, 2, 2), 5, None, None, 1e-6)
    with perf.options(nhwc_group_norm="yes"), pytest.raises(ValueError, match="'auto', 'on' or 'off'"):
        group_norm(torch.zeros(1, 8, 2, 2).contiguous(memory_format=CL), 2, None, None, 1e-6)


def test_native_probe_and_dispatch() -> None:
    # The CPU kernel keeps channels_last; the meta kernels return NCHW, as CUDA's do in torch 2.11.
    assert native_keeps_channels_last("cpu") and not native_keeps_channels_last("meta")
    norm = LayoutGroupNorm(4, 16)
    meta = torch.empty(1, 16, 6, 6, device="meta").contiguous(memory_format=CL)
    with torch.device("meta"):
        meta_norm = LayoutGroupNorm(4, 16)
    with perf.options(nhwc_group_norm="auto"):
        assert is_channels_last(meta_norm(meta))
        x = _map((1, 16, 6, 6), 5)
        assert torch.equal(norm(x), F.group_norm(x, 4, norm.weight, norm.bias, norm.eps))  # CPU: native
    with perf.options(nhwc_group_norm="off"):
        assert not is_channels_last(meta_norm(meta))
    with perf.options(nhwc_group_norm="on"):
        assert is_channels_last(norm(x)) and torch.allclose(norm(x), F.group_norm(x, 4), atol=2e-5)


def _norm_layouts(
    module: nn.Module, run: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, set[tuple[bool, bool]]]:
    """``run()`` and, for every GroupNorm call inside ``module``, whether its input and its output were NHWC."""
    seen: set[tuple[bool, bool]] = set()
    hooks = [
        m.register_forward_hook(lambda _m, i, out: seen.add((is_channels_last(i[0]), is_channels_last(out))))
        for m in module.modules()
        if isinstance(m, nn.GroupNorm)
    ]
    try:
        with torch.no_grad():
            out = run()
    finally:
        for h in hooks:
            h.remove()
    return out, seen


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_networks_run_every_norm_channels_last_and_match_nchw() -> None:
    """The GTASR UNet and the F16 VAE in channels_last with the option "on" (what "auto" does on CUDA): every
    GroupNorm gets an NHWC map from the layer before it, so the layout-keeping form runs at every norm, and
    returns NHWC; the outputs match the NCHW networks with native GroupNorm."""
    net, vae = deterministic_init_(build(TINY)), perturbed_vae(TOY_F16_VAE)
    g = torch.Generator().manual_seed(1)
    lr, image = torch.rand(1, 3, 16, 24, generator=g), torch.rand(1, 3, 64, 96, generator=g) * 2 - 1
    with perf.options(perf.BASELINE):
        ref_sr = upscale(net, lr, seed=2)
        with torch.no_grad():
            ref_img = vae.decode(vae.encode(image))
    with perf.options(perf.BASELINE, gtasr_channels_last=True, nhwc_group_norm="on"):
        sr, gtasr = _norm_layouts(net, lambda: upscale(net, lr, seed=2))
    set_layout(net, False)
    set_vae_layout(vae, True)
    with perf.options(perf.BASELINE, vae_channels_last=True, nhwc_group_norm="on"):
        img, vae_seen = _norm_layouts(vae, lambda: vae.decode(vae.encode(image.contiguous(memory_format=CL))))
    set_vae_layout(vae, False)
    assert gtasr == {(True, True)} and vae_seen == {(True, True)}
    assert rel(sr, ref_sr) < 1e-5 and rel(img, ref_img) < 1e-5
