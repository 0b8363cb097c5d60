"""Regional torch.compile (issue #11) against eager mode on tiny models (CPU): F16 VAE, GTASR, fp8 FLUX blocks.

Each test checks that compilation really happened (Dynamo's graph counter grows, the blocks carry a compiled
call, no graph breaks) and that the compiled model computes the eager function: float32, tolerance 1e-5
relative (Inductor may reorder sums; aot_eager runs the traced ops as they are, measured 0 to 6e-7). Most
tests use the ``aot_eager`` backend (Dynamo + AOTAutograd tracing as for Inductor, no code generation) to stay
fast; one test runs Inductor (C++ code generation, ~10 s) on one VAE block in both memory layouts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo as dynamo
from torch import nn
from torch._dynamo.utils import counters

from gtasr_support import TINY, deterministic_init_
from small_vae import SMALL, perturbed_vae
from sr4k.cli.main import UPSCALERS, build_parser
from sr4k.gtasr_core import build, upscale
from sr4k.gtasr_core.compile import compile_gtasr
from sr4k.gtasr_core.config import decoder_plan, encoder_plan
from sr4k.gtasr_core.noise import set_layout
from sr4k.gtasr_core.unet import UNetBlock
from sr4k.op4ksr_core.flux import fp8_linear
from sr4k.op4ksr_core.flux.compile import compile_blocks
from sr4k.op4ksr_core.vae import layers as vae_layers
from sr4k.op4ksr_core.vae.banded import Bands, decode_banded, encode_banded
from sr4k.op4ksr_core.vae.compile import VAE_COMPILED_BLOCKS, compile_vae
from sr4k.op4ksr_core.vae.model import F16VAE, set_vae_layout
from sr4k.srkit import perf
from sr4k.srkit.regional_compile import RECOMPILE_LIMIT, compiled_modules, raise_recompile_limit

TOL = 1e-5
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    dynamo.reset()
    counters.clear()
    yield
    dynamo.reset()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def graph_breaks() -> int:
    return sum(counters["graph_break"].values())


def _two_level_vae() -> F16VAE:
    """The F16 VAE's blocks at two levels (32 and 64 channels, one resnet per encoder level): every compiled
    block kind (resnet with and without shortcut, downsampler, mid-block resnets) in a few graphs."""
    return perturbed_vae(dataclasses.replace(SMALL, block_out_channels=(32, 64), layers_per_block=1))


def test_compile_vae_matches_eager_in_both_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks, so the (eager) chunked upsampler runs several row chunks between compiled blocks.
    monkeypatch.setattr(vae_layers, "UPSAMPLE_CHUNK_ELEMENTS", 2000)
    vae = _two_level_vae()
    image = torch.rand(1, 3, 48, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        z_ref = vae.encode(image)
        img_ref = vae.decode(z_ref)
    compile_vae(vae, backend="aot_eager")
    blocks = [m for m in vae.modules() if isinstance(m, VAE_COMPILED_BLOCKS)]
    assert compiled_modules(vae) == blocks and len(blocks) == 2 + 1 + 2 * 2 + 2 * 2
    with torch.no_grad():
        z, img = vae.encode(image), vae.decode(z_ref)
    first = graphs()
    # Blocks of the same shape share graphs: fewer graphs than blocks.
    assert 0 < first < len(blocks) and graph_breaks() == 0
    assert rel(z, z_ref) < TOL and rel(img, img_ref) < TOL
    with torch.no_grad():
        vae.decode(z_ref)
    assert graphs() == first  # the same shapes again: no recompilation
    try:
        with torch.no_grad(), perf.options(vae_channels_last=True):
            set_vae_layout(vae, True)
            z_cl, img_cl = vae.encode(image), vae.decode(z_ref)
    finally:
        set_vae_layout(vae, False)
    assert graphs() > first and graph_breaks() == 0  # NHWC strides: graphs of their own
    assert rel(z_cl, z_ref) < TOL and rel(img_cl, img_ref) < TOL


def test_compiled_vae_keeps_the_banded_fallback_exact() -> None:
    """The banded OOM fallback calls the blocks' convs and norms itself and the (compiled) mid block."""
    vae = _two_level_vae()
    image = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(2)) * 2 - 1
    latent = torch.randn(1, 16, 6, 10, generator=torch.Generator().manual_seed(3))
    bands = Bands(CPU, CPU, 1 << 12)
    with torch.no_grad():
        enc_ref, dec_ref = encode_banded(vae, image, bands), decode_banded(vae, latent, bands)
        compile_vae(vae, backend="aot_eager")
        enc, dec = encode_banded(vae, image, bands), decode_banded(vae, latent, bands)
    assert graphs() > 0 and graph_breaks() == 0  # the mid blocks' resnets ran compiled
    assert rel(enc, enc_ref) < TOL and rel(dec, dec_ref) < TOL


def test_inductor_vae_block_matches_eager_in_both_layouts() -> None:
    """Inductor's generated GroupNorm + SiLU + residual kernels (C++ on the CPU) for NCHW and NHWC inputs."""
    torch.manual_seed(0)
    root = nn.Sequential(vae_layers.ResnetBlock(16, 32, 8, 1e-6)).eval()
    with torch.no_grad():
        root[0].norm1.weight.normal_(1, 0.2)
        root[0].norm2.bias.normal_(0, 0.2)
    x = torch.randn(1, 16, 24, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = root(x)
        compile_vae(root)  # default backend: inductor
        out = root(x)
        assert (
            graphs() == 1
            and counters["inductor"]["fxgraph_cache_miss"] + counters["inductor"]["fxgraph_cache_hit"] >= 1
        )
        root.to(memory_format=torch.channels_last)
        out_cl = root(x.contiguous(memory_format=torch.channels_last))
    assert graphs() == 2 and graph_breaks() == 0
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    assert rel(out, ref) < TOL and rel(out_cl, ref) < TOL


def test_compile_gtasr_matches_eager_in_both_layouts() -> None:
    # One level (5 blocks, Swin in each, with and without skip input and projection); the resampling blocks
    # are in the next test.
    cfg = dataclasses.replace(TINY, channel_mult=(1,), attn_resolutions=(16,))
    net = deterministic_init_(build(cfg)).eval()
    lr = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = upscale(net, lr, seed=3)
    compile_gtasr(net, backend="aot_eager")
    blocks = [m for m in net.modules() if isinstance(m, UNetBlock)]
    assert compiled_modules(net) == blocks and len(blocks) == 5
    with torch.no_grad():
        out = upscale(net, lr, seed=3)
    first = graphs()
    assert 0 < first <= len(blocks) and graph_breaks() == 0 and rel(out, ref) < TOL
    with torch.no_grad(), perf.options(dataclasses.replace(perf.current())):
        upscale(net, lr, seed=3)
    # The blocks read perf options (GroupNorm path): a new, equal options object must not recompile them.
    assert graphs() == first
    try:
        with torch.no_grad(), perf.options(gtasr_channels_last=True):
            out_cl = upscale(net, lr, seed=3)
    finally:
        set_layout(net, False)
    assert graphs() > first and graph_breaks() == 0 and rel(out_cl, ref) < TOL


def test_compile_gtasr_resampling_blocks() -> None:
    """The released network's down (2x2 average + conv) and up (nearest via transposed conv) blocks."""
    cfg = dataclasses.replace(TINY, attn_resolutions=())
    specs = [s for s in encoder_plan(cfg) + decoder_plan(cfg) if s.up or s.down]
    assert {s.up for s in specs} == {True, False}
    blocks = nn.ModuleList(deterministic_init_(UNetBlock(s, cfg)) for s in specs).eval()
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(1, s.in_channels, 8, 8, generator=g) for s in specs]
    emb = torch.randn(1, cfg.emb_channels, generator=g)
    with torch.no_grad():
        ref = [b(x, emb) for b, x in zip(blocks, xs, strict=True)]
        compile_gtasr(blocks, backend="aot_eager")
        out = [b(x, emb) for b, x in zip(blocks, xs, strict=True)]
    assert len(compiled_modules(blocks)) == len(specs) and graphs() == len(specs) and graph_breaks() == 0
    assert all(rel(o, r) < TOL for o, r in zip(out, ref, strict=True))


# A small diffusers FLUX transformer (hidden 64: two heads of 32; every dimension a multiple of 16, as
# torch._scaled_mm needs); TINY_FLUX's hidden 3072 takes ~15 s to build and ~10 s per fp8 forward on the CPU.
SMALL_FLUX = dict(
    patch_size=1,
    in_channels=16,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=32,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=16,
    guidance_embeds=True,
    axes_dims_rope=(8, 12, 12),
)


def _small_flux() -> tuple[nn.Module, dict]:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(**SMALL_FLUX).eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(8.0), indexing="ij"), -1)
    inputs = dict(
        hidden_states=torch.randn(1, 32, 16, generator=g),
        encoder_hidden_states=torch.randn(1, 2, 32, generator=g),
        pooled_projections=torch.randn(1, 16, generator=g),
        timestep=torch.full((1,), 0.5),
        img_ids=ids.reshape(-1, 3),
        txt_ids=torch.zeros(2, 3),
        guidance=torch.full((1,), 3.5),
        return_dict=False,
    )
    return model, inputs


def _cpu_scaled_mm_error() -> str | None:
    """Why ``torch._scaled_mm`` cannot run row-wise e4m3 on this CPU build, or None if it can."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(
            a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.float32
        )
    except (RuntimeError, NotImplementedError) as e:
        return f"{type(e).__name__}: {str(e)[:120]}"
    return None


@pytest.mark.parametrize("mode", ["rowwise", "weight_only"])
def test_fp8_blocks_compile_fullgraph(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile_blocks on a transformer whose token linears are FP8Linear: one graph per block class, no
    breaks, same output as eager. Row-wise: the ``torch._scaled_mm`` branch (normally CUDA only) is enabled
    on the CPU so that its graph capture is what gets tested."""
    if mode == "rowwise":
        reason = _cpu_scaled_mm_error()
        if reason:
            pytest.skip(f"this torch build has no CPU row-wise fp8 torch._scaled_mm ({reason})")
        monkeypatch.setattr(fp8_linear, "use_scaled_mm", lambda x: True)
    model, inputs = _small_flux()
    with torch.no_grad():
        full = model(**inputs)[0]
        assert fp8_linear.fp8_linears(model, mode) > 0
        ref = model(**inputs)[0]
        compile_blocks(model, backend="aot_eager")
        out = model(**inputs)[0]
    assert graphs() == 2 and graph_breaks() == 0  # one FluxTransformerBlock, one FluxSingleTransformerBlock
    assert rel(out, ref) < TOL
    assert 1e-4 < rel(ref, full) < 0.1  # e4m3 is lossy (3 mantissa bits); bounded
    if mode == "rowwise":  # the activations were quantised too, i.e. the _scaled_mm branch ran
        for m in model.modules():
            if isinstance(m, fp8_linear.FP8Linear):
                m.mode = "weight_only"
        with torch.no_grad():
            assert rel(model(**inputs)[0], ref) > 1e-4


def test_compile_entry_points_reject_foreign_modules_and_raise_the_limit() -> None:
    with pytest.raises(TypeError, match="ResnetBlock, Downsample"):
        compile_vae(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="UNetBlock"):
        compile_gtasr(nn.Sequential(nn.Conv2d(3, 3, 1)))
    cfg = dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    old = getattr(cfg, name)
    try:
        setattr(cfg, name, 8)
        assert raise_recompile_limit() == RECOMPILE_LIMIT and getattr(cfg, name) == RECOMPILE_LIMIT
        setattr(cfg, name, 1000)
        raise_recompile_limit()
        assert getattr(cfg, name) == 1000  # never lowered
    finally:
        setattr(cfg, name, old)


def test_cli_compile_flag_compiles_the_gtasr_blocks(files: tuple) -> None:
    """``sr4k upscale --model gtasr --compile`` compiles the network's UNet blocks when it loads them
    (compilation itself happens on the first image; not run here)."""
    pth, _, _ = files
    args = build_parser().parse_args(["upscale", "--weights", str(pth), "--compile", "in.png", "out.png"])
    net = UPSCALERS["gtasr"].load(args, CPU, torch.float32).net
    blocks = [m for m in net.modules() if isinstance(m, UNetBlock)]
    assert blocks and compiled_modules(net) == blocks
    plain = build_parser().parse_args(["upscale", "--weights", str(pth), "in.png", "out.png"])
    assert compiled_modules(UPSCALERS["gtasr"].load(plain, CPU, torch.float32).net) == []


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
