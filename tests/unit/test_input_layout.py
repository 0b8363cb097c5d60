"""Networks take their input in their own memory layout (srkit/layout.py).

ComfyUI's IMAGE ``[B, H, W, C]`` becomes ``[B, C, H, W]`` by ``movedim`` (an NHWC-strided view), and
``read_image`` permuted the same way (now it returns NCHW-contiguous tensors). Fed as they were, such inputs ran every
convolution of an NCHW GTASR UNet or F16 VAE encoder in channels_last, so the nodes and the CLI ran another layout
than the benchmarks. Now the layout is the option's (``perf.gtasr_channels_last`` / ``perf.vae_channels_last``: on
by default since the H200 run of 2026-11-30, off under ``perf.COMPILED``), whatever the input's; both settings are
tested. Each convolution's input layout is recorded by a forward pre-hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from gtasr_support import lowres
from small_vae import small_f16_vae
from sr4k.gtasr_core import GTASRNet, upscale
from sr4k.gtasr_core.config import TINY
from sr4k.op4ksr_core.vae.banded import Bands, decode_banded, encode_banded
from sr4k.srkit import perf
from sr4k.srkit.color import color_correct
from sr4k.srkit.group_norm import is_channels_last
from sr4k.srkit.image_io import read_image
from sr4k.srkit.layout import in_layout_of, layout_of

CPU = torch.device("cpu")


def _nhwc_view(x: torch.Tensor) -> torch.Tensor:
    """``x`` [B, C, H, W] as ComfyUI hands an IMAGE to a node: an NHWC tensor seen through ``movedim``."""
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


@contextmanager
def conv_layouts(module: nn.Module) -> Iterator[list[bool]]:
    """Whether each convolution call of ``module`` got a channels_last input (in call order)."""
    seen: list[bool] = []

    def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(is_channels_last(args[0]))

    handles = [m.register_forward_pre_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def test_layout_helpers() -> None:
    w = torch.randn(8, 3, 3, 3)
    assert layout_of(w) == torch.contiguous_format
    assert layout_of(w.contiguous(memory_format=torch.channels_last)) == torch.channels_last
    x = _nhwc_view(torch.randn(1, 3, 5, 7))
    assert is_channels_last(x)
    y = in_layout_of(x, w)
    assert y.is_contiguous() and torch.equal(y, x)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert in_layout_of(cl, w.contiguous(memory_format=torch.channels_last)) is cl  # no copy when already so


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_read_image_gives_nchw_contiguous_tensors(tmp_path: Path, mode: str) -> None:
    """The CLI's and the trainers' reader: it used to return a permuted (NHWC-strided) view."""
    Image.fromarray(lowres(0, 16, 24)).convert(mode).save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png", keep_alpha=True)
    assert x.is_contiguous() and x.shape == (4 if mode == "RGBA" else 3, 16, 24)


@pytest.fixture(scope="module")
def gtasr() -> GTASRNet:
    return GTASRNet(TINY).eval()


def assert_layout(seen: list[bool], channels_last: bool) -> None:
    """Every convolution input NCHW, or (channels_last) nearly every one NHWC: a convolution whose input and weight
    are both ambiguous (a 1x1 map, a 1x1 kernel on one channel) may report either."""
    assert len(seen) > 5
    assert sum(seen) >= 0.9 * len(seen) if channels_last else not any(seen)


@pytest.mark.parametrize(
    "channels_last", [False, True], ids=["nchw option", "channels_last option (default)"]
)
@pytest.mark.parametrize("make", [_nhwc_view, lambda x: x], ids=["nhwc view", "contiguous"])
def test_gtasr_runs_the_options_layout_whatever_the_input_layout(
    gtasr: GTASRNet, make: Callable, channels_last: bool
) -> None:
    lr = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    inputs: list[bool] = []  # the network's own inputs (the HR noisy image and the LR), NHWC or not
    hook = gtasr.register_forward_pre_hook(
        lambda _, a: inputs.extend([is_channels_last(a[0]), is_channels_last(a[2])])
    )
    try:
        with perf.options(gtasr_channels_last=channels_last), torch.no_grad(), conv_layouts(gtasr) as seen:
            out = upscale(gtasr, make(lr), seed=3)
            ref = upscale(gtasr, lr.contiguous(), seed=3)
    finally:
        hook.remove()
    assert len(seen) > 20
    assert_layout(seen, channels_last)
    assert inputs == [channels_last] * 4
    assert torch.equal(out, ref)  # same layout, same kernels: the same bits
    # The result keeps the input's layout: an IMAGE's view in, an IMAGE's layout out (no copy in the node).
    assert is_channels_last(out) if make is _nhwc_view else out.is_contiguous()


@pytest.mark.parametrize("tile", [None, 16], ids=["patch-free", "tiled"])
def test_gtasr_output_keeps_the_input_layout_with_the_same_bits(gtasr: GTASRNet, tile: int | None) -> None:
    """A batch of NHWC views whose size is padded and cropped: an NHWC result, every value and every preview
    region equal to those of the NCHW call (only where the values are stored differs)."""
    lr = torch.rand(2, 3, 20, 36, generator=torch.Generator().manual_seed(6))
    regions: dict[str, list[torch.Tensor]] = {"nhwc": [], "nchw": []}
    outs = {
        name: upscale(
            gtasr,
            x,
            seed=3,
            tile=tile,
            overlap=4,
            on_tile=lambda i, r, t, name=name: regions[name].append(t.clone()),
        )
        for name, x in (("nhwc", _nhwc_view(lr)), ("nchw", lr))
    }
    assert outs["nhwc"].shape == (2, 3, 80, 144)
    assert is_channels_last(outs["nhwc"]) and outs["nchw"].is_contiguous()
    assert torch.equal(outs["nhwc"], outs["nchw"])
    assert (
        len(regions["nhwc"]) == len(regions["nchw"]) == (0 if tile is None else 2 * 2 * 3)
    )  # padded 24 x 40: 2 x 3 tiles
    assert all(torch.equal(a, b) for a, b in zip(regions["nhwc"], regions["nchw"], strict=True))


def test_gtasr_channels_last_option_still_runs_channels_last(gtasr: GTASRNet) -> None:
    lr = _nhwc_view(torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0)))
    assert perf.PerfOptions().gtasr_channels_last  # the default since the H200 run of 2026-11-30
    with perf.options(gtasr_channels_last=True), torch.no_grad(), conv_layouts(gtasr) as seen:
        upscale(gtasr, lr.contiguous(), seed=3)  # an NCHW input: the network's layout wins
    assert seen[0] and sum(seen) >= 0.9 * len(seen)


@pytest.fixture(scope="module")
def vae() -> torch.nn.Module:
    return small_f16_vae()


def _image() -> torch.Tensor:
    return torch.rand(1, 3, 48, 80, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize(
    "channels_last", [False, True], ids=["nchw option", "channels_last option (default)"]
)
def test_vae_encode_and_decode_run_the_options_layout_for_nhwc_inputs(
    vae: torch.nn.Module, channels_last: bool
) -> None:
    image = _image()
    latent = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(2))
    with perf.options(vae_channels_last=channels_last), torch.no_grad():
        ref_z, ref_x = vae.encode(image), vae.decode(latent)
        with conv_layouts(vae) as seen:
            z = vae.encode(_nhwc_view(image))
            x = vae.decode(_nhwc_view(latent))
    assert len(seen) > 10
    assert_layout(seen, channels_last)
    assert torch.equal(z, ref_z) and torch.equal(x, ref_x)


def test_vae_layout_is_set_in_inference_only_and_stays_usable_by_autograd() -> None:
    """F16VAE puts its weights in the option's layout in inference calls (no autograd, eval mode), so ComfyUI's VAE
    nodes run it too; the copy is made outside inference mode (ComfyUI runs nodes inside it), so a later training
    step on the same weights works; a training-mode call leaves the layout alone."""
    from sr4k.op4ksr_core.vae.model import set_vae_layout

    vae = small_f16_vae()
    w = vae.decoder.conv_in.weight
    set_vae_layout(vae, False)
    vae.train()
    with torch.no_grad():
        vae.decode(torch.randn(1, 16, 2, 2))
    assert w.is_contiguous()  # training mode: untouched
    vae.eval()
    with torch.inference_mode():
        vae.decode(torch.randn(1, 16, 2, 2))
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_inference()
    vae.train()
    vae.decode(torch.randn(1, 16, 2, 2)).square().mean().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


def test_banded_vae_runs_nchw_for_nhwc_inputs(vae: torch.nn.Module) -> None:
    """Bands call the blocks directly: they run the weights' layout, NCHW here, whatever the input's."""
    from sr4k.op4ksr_core.vae.model import set_vae_layout

    set_vae_layout(vae, False)
    image = _image()
    latent = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(2))
    bands = Bands(CPU, CPU, 1 << 12)
    with torch.no_grad():
        ref_z, ref_x = encode_banded(vae, image, bands), decode_banded(vae, latent, bands)
        with conv_layouts(vae) as seen:
            z = encode_banded(vae, _nhwc_view(image), bands)
            x = decode_banded(vae, _nhwc_view(latent), bands)
    assert len(seen) > 10 and not any(seen)
    assert torch.equal(z, ref_z) and torch.equal(x, ref_x)


def test_comfy_image_through_the_op4ksr_input_chain_reaches_the_encoder_nchw(vae: torch.nn.Module) -> None:
    """The node's chain (IMAGE -> movedim view -> bicubic -> pad -> VAE) kept NHWC until the encoder."""
    from sr4k.op4ksr_core.headless import pad_for_crop, upsample_bicubic

    comfy_image = torch.rand(1, 12, 20, 3, generator=torch.Generator().manual_seed(4))  # IMAGE [B, H, W, C]
    padded, _ = pad_for_crop(upsample_bicubic(comfy_image.movedim(-1, 1), (48, 80)), 16)
    assert is_channels_last(padded)  # what arrives at the VAE
    with perf.options(vae_channels_last=False), torch.no_grad(), conv_layouts(vae.encoder) as seen:
        vae.encode((padded * 2 - 1).clamp(-1, 1))
    assert_layout(seen, False)


class _ConvInputs(TorchDispatchMode):
    """Whether each aten convolution (functional ones too) got a channels_last input."""

    def __init__(self) -> None:
        super().__init__()
        self.channels_last: list[bool] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket is torch.ops.aten.convolution:
            self.channels_last.append(is_channels_last(args[0]))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", ["wavelet", "adain", "lab"])
def test_color_correction_of_nhwc_views_runs_nchw(method: str) -> None:
    gen = torch.Generator().manual_seed(5)
    upscaled, reference = torch.rand(1, 3, 64, 96, generator=gen), torch.rand(1, 3, 16, 24, generator=gen)
    ref_out = color_correct(upscaled, reference, method)
    with _ConvInputs() as convs:
        out = color_correct(_nhwc_view(upscaled), _nhwc_view(reference), method)
    assert not any(convs.channels_last)
    assert method != "wavelet" or len(convs.channels_last) > 4  # the wavelet's blurs were seen
    assert torch.equal(out, ref_out)


def test_relayout_keeps_the_weights_kind() -> None:
    """A weight made inside inference mode (ComfyUI's loader nodes) stays an inference tensor and keeps working
    there; a normal weight re-laid-out inside inference mode (a node's call) stays normal, so autograd can use it."""
    from sr4k.srkit.layout import relayout_

    x = torch.randn(1, 4, 6, 6)
    with torch.inference_mode():
        loaded = nn.Conv2d(4, 4, 3, padding=1)
        ref = loaded(x)
        relayout_(loaded.weight, torch.channels_last)
        assert loaded.weight.is_inference() and torch.allclose(loaded(x), ref, atol=1e-6)
    normal = nn.Conv2d(4, 4, 3, padding=1)
    with torch.inference_mode():
        relayout_(normal.weight, torch.channels_last)
    assert not normal.weight.is_inference() and normal.weight.is_contiguous(memory_format=torch.channels_last)
    normal(x).sum().backward()
    assert normal.weight.grad is not None
