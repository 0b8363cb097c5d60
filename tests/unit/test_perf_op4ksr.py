"""Issue #11 optimisations on the OP4KSR side, each against its unoptimised twin on small CPU inputs.

Tolerances: float32 paths that only reorder arithmetic must agree to 1e-5 relative (measured 1e-7 to 6e-6);
exact rewrites (chunking, constant modulation) must agree bit for bit or to 1e-6; fp8 is lossy (stated).
"""

from __future__ import annotations

import dataclasses
import weakref

import pytest
import torch
import torch.nn.functional as F

from small_vae import perturbed_vae
from sr4k.op4ksr_core.flux.const_modulation import ConstantModulation, freeze_modulation, modulation_names
from sr4k.op4ksr_core.flux.fp8_linear import FP8Linear, fp8_linears, scaled_mm_supported, use_scaled_mm
from sr4k.op4ksr_core.vae import layers as vae_layers
from sr4k.op4ksr_core.vae.attention import gemm_single_head_attention
from sr4k.op4ksr_core.vae.config import FLUX_F16
from sr4k.op4ksr_core.vae.model import F16VAE, set_vae_layout
from sr4k.srkit import perf
from sr4k.srkit.color import color_correct
from sr4k.srkit.transfer import ImageBatch, to_host
from tiny_models import TINY_FLUX, tiny_flux_diffusers_model


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("n,chunk", [(300, 64), (64, 4096)])
def test_gemm_attention_equals_sdpa(n: int, chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 512, generator=g) for _ in range(3))
    ref = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
    out = gemm_single_head_attention(q, k, v, query_chunk=chunk)
    assert rel(out, ref) < 1e-5
    with pytest.raises(ValueError, match="query_chunk"):
        gemm_single_head_attention(q, k, v, query_chunk=0)


@pytest.fixture(scope="module")
def small_vae() -> F16VAE:
    return perturbed_vae(
        dataclasses.replace(FLUX_F16, block_out_channels=(32, 32, 64, 64), layers_per_block=1)
    )


@pytest.mark.parametrize("option", ["vae_gemm_attention", "vae_channels_last", "vae_chunked_upsample", "all"])
def test_vae_options_match_baseline(small_vae: F16VAE, option: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks, so the chunked upsample really runs in several slabs at this size.
    monkeypatch.setattr(vae_layers, "UPSAMPLE_CHUNK_ELEMENTS", 2000)
    image = torch.rand(1, 3, 96, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad(), perf.options(perf.BASELINE):
        set_vae_layout(small_vae, False)
        z_ref, img_ref = small_vae.encode(image), small_vae.decode(small_vae.encode(image))
    opts = perf.PerfOptions() if option == "all" else dataclasses.replace(perf.BASELINE, **{option: True})
    with torch.no_grad(), perf.options(opts):
        set_vae_layout(small_vae, opts.vae_channels_last)
        z, img = small_vae.encode(image), small_vae.decode(z_ref)
    set_vae_layout(small_vae, False)
    # Chunking is exact maths; the conv backend may still sum in another order for another input shape.
    assert rel(z, z_ref) < 1e-5 and rel(img, img_ref) < 1e-5


def test_vae_layout_switches_conv_weights(small_vae: F16VAE) -> None:
    set_vae_layout(small_vae, True)
    w = small_vae.decoder.conv_in.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    set_vae_layout(small_vae, False)
    assert small_vae.decoder.conv_in.weight.is_contiguous()


def test_separable_wavelet_matches_2d_blur() -> None:
    g = torch.Generator().manual_seed(2)
    up, ref = torch.rand(2, 3, 70, 90, generator=g), torch.rand(1, 3, 20, 24, generator=g)
    with perf.options(separable_color=False):
        base = color_correct(up, ref, "wavelet")
    with perf.options(separable_color=True):
        fast = color_correct(up, ref, "wavelet")
    assert (fast - base).abs().max() < 1e-5


def test_to_host_and_image_batches() -> None:
    x = torch.rand(1, 3, 4, 4)
    assert to_host(x) is x
    one = ImageBatch(1, "cpu")
    one.add(x)
    assert one.result() is x  # a single image: no copy at all
    frames = [torch.rand(1, 4, 5, 3) for _ in range(3)]
    batch = ImageBatch(3, "cpu")
    for f in frames:
        batch.add(f)
    out = batch.result()
    assert torch.equal(out, torch.cat(frames))
    alive = weakref.ref(frames[1])
    del frames[1], f
    assert alive() is None  # the batch keeps no reference to what was added: held once, in the batch
    with pytest.raises(ValueError, match="one more"):
        batch.add(x)
    with pytest.raises(ValueError, match="1 of 2 images"):
        half = ImageBatch(2, "cpu")
        half.add(x)
        half.result()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned host memory needs CUDA")
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_to_host_from_cuda_keeps_the_layout_in_pinned_memory(fmt: torch.memory_format) -> None:
    """GTASR's output for an IMAGE input is NHWC on the GPU: it must reach the host NHWC (one DMA), so that the node
    hands its [B, H, W, C] view to ComfyUI without a host copy."""
    x = torch.rand(2, 3, 16, 24, device="cuda").contiguous(memory_format=fmt)
    out = to_host(x)
    assert out.device.type == "cpu" and out.is_pinned() and torch.equal(out, x.cpu())
    assert out.stride() == x.stride()


def _flux_inputs(model: torch.nn.Module, t: float = 0.5) -> dict:
    g = torch.Generator().manual_seed(3)
    ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)
    return dict(
        hidden_states=torch.randn(1, 16, 64, generator=g),
        encoder_hidden_states=torch.zeros(1, 1, TINY_FLUX["joint_attention_dim"]),
        pooled_projections=torch.zeros(1, TINY_FLUX["pooled_projection_dim"]),
        timestep=torch.full((1,), t),
        img_ids=ids.reshape(-1, 3),
        txt_ids=torch.zeros(1, 3),
        guidance=torch.full((1,), 3.5),
        return_dict=False,
    )


def test_constant_modulation_is_bit_exact_and_guarded() -> None:
    model = tiny_flux_diffusers_model()
    inputs = _flux_inputs(model)
    with torch.no_grad():
        ref = model(**inputs)[0]
        n = len(modulation_names(model))
        handle = freeze_modulation(model, lambda: model(**inputs))
        assert n == 2 + 1 + 1  # norm1 + norm1_context (double block), norm (single block), norm_out
        assert sum(isinstance(m, ConstantModulation) for m in model.modules()) == n
        other = dict(inputs, hidden_states=inputs["hidden_states"].flip(1))
        assert torch.equal(model(**inputs)[0], ref)
        with pytest.raises(ValueError, match="frozen"):
            model(**_flux_inputs(model, t=0.25))
        handle.restore()
        assert not any(isinstance(m, ConstantModulation) for m in model.modules())
        ref_other = model(**other)[0]
        freeze_modulation(model, lambda: model(**inputs))
        assert torch.equal(model(**other)[0], ref_other)  # the constants hold for any image tokens


def test_fp8_linear_error_is_bounded() -> None:
    g = torch.Generator().manual_seed(4)
    lin = torch.nn.Linear(256, 128)
    x = torch.randn(3, 40, 256, generator=g)
    for mode in ("rowwise", "weight_only"):  # on the CPU both dequantise the e4m3 weights
        out = FP8Linear(lin, mode)(x)
        assert 1e-4 < rel(out, lin(x)) < 0.04  # e4m3: 3 mantissa bits, ~2.5 % measured
    with pytest.raises(ValueError, match="mode"):
        FP8Linear(lin, "int8")  # type: ignore[arg-type]
    model = tiny_flux_diffusers_model()
    inputs = _flux_inputs(model)
    with torch.no_grad():
        ref = model(**inputs)[0]
        n = fp8_linears(model, "weight_only")
        out = model(**inputs)[0]
    assert n > 0 and not any(
        type(m) is torch.nn.Linear and ".norm" not in name and name.startswith("single")
        for name, m in model.named_modules()
    )
    assert rel(out, ref) < 0.1


def test_rowwise_fp8_gemms_only_where_the_kernel_runs() -> None:
    """torch._scaled_mm's row-wise kernel needs fp8 tensor cores (sm 8.9+) and bf16 activations; an A100 or an
    RTX 3090, or fp16 activations, take the dequantised GEMM instead of an error."""
    assert scaled_mm_supported((9, 0), torch.bfloat16) and scaled_mm_supported((8, 9), torch.bfloat16)
    assert not scaled_mm_supported((8, 0), torch.bfloat16)  # A100
    assert not scaled_mm_supported((8, 6), torch.bfloat16)  # RTX 30xx
    assert not scaled_mm_supported((9, 0), torch.float16) and not scaled_mm_supported((9, 0), torch.float32)
    assert not scaled_mm_supported(None, torch.bfloat16)  # not CUDA
    assert not use_scaled_mm(torch.zeros(2, 2, dtype=torch.bfloat16))


def test_vae_memory_estimates_cover_the_h200_measurement() -> None:
    """The ComfyUI estimates against the working memory measured on an H200 (op4ksr_core/vae/memory.py)."""
    from sr4k.op4ksr_core.vae.memory import decode_memory, encode_memory

    gib = 2**30
    for est, measured in (
        (encode_memory(4096, 4096, 2), 6.00),
        (decode_memory(256, 256, 2), 8.60),
        (encode_memory(2048, 2048, 2), 1.50),
        (decode_memory(128, 128, 2), 2.02),
    ):
        assert measured <= est / gib <= 1.25 * measured
    assert decode_memory(256, 256, 2) < 0.15 * 73e9  # the old F8-derived formula asked 73 GB


def test_cli_low_vram_stays_close_to_bf16(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--low-vram (fp8 weight-only token linears + constant modulation) against the plain CLI run."""
    import numpy as np
    from PIL import Image

    from sr4k.cli.main import main
    from sr4k.op4ksr_core.flux import low_vram
    from tiny_models import f16_vae_file, tiny_flux_bfl_file

    lr = (np.random.default_rng(3).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(lr).save(tmp_path / "in.png")
    common = [
        "upscale",
        "--model",
        "op4ksr",
        "--flux",
        str(tiny_flux_bfl_file()),
        "--vae",
        str(f16_vae_file("bfl")),
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--long-side",
        "128",
    ]
    calls = []
    original = low_vram.fp8_linears
    monkeypatch.setattr(low_vram, "fp8_linears", lambda *a, **k: calls.append(original(*a, **k)) or calls[-1])
    assert main([*common, "--low-vram", str(tmp_path / "in.png"), str(tmp_path / "low.png")]) == 0
    assert main([*common, str(tmp_path / "in.png"), str(tmp_path / "ref.png")]) == 0
    low = np.asarray(Image.open(tmp_path / "low.png"), dtype=float)
    ref = np.asarray(Image.open(tmp_path / "ref.png"), dtype=float)
    assert calls and calls[0] > 0 and low.shape == ref.shape == (96, 128, 3)
    # Colour correction pins the low frequencies; fp8 moves the rest by a few 8-bit levels on average.
    assert 0 < np.abs(low - ref).mean() < 4.0


def test_regional_compile_matches_eager() -> None:
    """compile_blocks captures every block as one graph (fullgraph) and computes the same function; the
    aot_eager backend traces like Inductor without generating code, so the CPU test stays fast."""
    import torch._dynamo as dynamo

    from sr4k.op4ksr_core.flux.compile import compile_blocks

    model = tiny_flux_diffusers_model()
    inputs = _flux_inputs(model)
    with torch.no_grad():
        ref = model(**inputs)[0]
        dynamo.reset()
        compile_blocks(model, backend="aot_eager")
        out = model(**inputs)[0]
    assert rel(out, ref) < 1e-6
    with pytest.raises(TypeError, match="compile_repeated_blocks"):
        compile_blocks(torch.nn.Linear(2, 2))


def test_gemm_attention_backpropagates_like_sdpa() -> None:
    """With gradients on (the F16 decoder trainer, L_AP through the decoder) the chunked attention is
    differentiable and its gradients equal SDPA's (bmm(out=) cannot be recorded by autograd)."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 40, 64, generator=g).requires_grad_() for _ in range(3))
    gemm_single_head_attention(q, k, v, query_chunk=16).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0].square().sum().backward()
    for a, t in zip(ours, (q, k, v), strict=True):
        assert torch.allclose(a, t.grad, rtol=1e-4, atol=1e-5)
