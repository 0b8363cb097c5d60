"""OP4KSR_Upscale's VAE steps (``nodes/op4ksr_vae``) on ComfyUI's VAE object, under a real allocation budget.

``never`` must surface out-of-memory instead of tiling behind the user's back (ComfyUI's ``VAE.decode`` does);
``on_oom`` must retry in tiles that give the untiled result (no seams, partitioned shift once).
"""

from __future__ import annotations

import logging

import pytest
import torch

from memory_budget import memory_budget
from small_vae import small_f16_vae

pytestmark = pytest.mark.comfy

# Decoding a 3 x 5 latent of SMALL untiled peaks in the full-resolution tail (~0.5 MB: 32 channels x 50 x 82);
# every full map the banded path keeps is <= 123 kB (32 channels at 24 x 40, float32).
BUDGET = 200_000


@pytest.fixture(scope="module")
def steps():
    from comfy_tree import import_comfy

    import_comfy()
    from sr4k.nodes import op4ksr_vae

    return op4ksr_vae


def _comfy_vae(mode: str):
    from sr4k.nodes.f16_vae import make_comfy_vae

    model = small_f16_vae(mode)
    vae = make_comfy_vae(model)
    assert vae.vae_dtype == torch.float32  # CPU: the comparison below is at float32 rounding
    return vae


def _latent() -> torch.Tensor:
    return torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(0))


def test_never_surfaces_out_of_memory_where_comfyui_tiles_silently(
    steps, caplog: pytest.LogCaptureFixture
) -> None:
    vae = _comfy_vae("partitioned")
    with memory_budget(BUDGET), pytest.raises(torch.OutOfMemoryError):
        steps.decode(vae, _latent(), "never")
    with (
        caplog.at_level(logging.WARNING),
        memory_budget(BUDGET),
    ):  # ComfyUI's own decode: the behaviour we avoid
        try:
            vae.decode(_latent())
        except torch.OutOfMemoryError:
            pass  # its 64-latent tiles are the whole of this small image, so they fail too
    assert "retrying with tiled VAE decoding" in caplog.text


@pytest.mark.parametrize("mode", ["aligned", "partitioned"])
def test_on_oom_retries_in_exact_tiles(steps, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    vae = _comfy_vae(mode)
    ref = steps.decode(vae, _latent(), "never")
    with caplog.at_level(logging.INFO, logger="sr4k.nodes.op4ksr_vae"), memory_budget(BUDGET) as log:
        out = steps.decode(vae, _latent(), "on_oom")
    assert log.refused, "the untiled decode must have hit the budget"
    assert "retrying in tiles" in caplog.text and "tiled VAE decode in row bands" in caplog.text
    assert out.shape == ref.shape == (1, 3, 48, 80)
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5)


def test_always_tiles_encode_and_decode_to_the_untiled_result(steps) -> None:
    vae = _comfy_vae("partitioned")
    pixels = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(1))  # ComfyUI IMAGE layout
    latent = steps.encode(vae, pixels, "never")
    torch.testing.assert_close(steps.encode(vae, pixels, "always"), latent, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        steps.decode(vae, latent, "always"), steps.decode(vae, latent, "never"), rtol=0, atol=2e-5
    )
    with pytest.raises(ValueError, match="vae_tiling='sometimes'; choose one of never, on_oom, always"):
        steps.decode(vae, latent, "sometimes")


# --- the node in the real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def op4ksr_server(comfy_server):
    from tiny_models import install_op4ksr_models

    install_op4ksr_models(comfy_server)
    return comfy_server


def test_node_vae_tiling_always_matches_the_default(op4ksr_server) -> None:
    """The bundled workflow (vae_tiling never) and the same with tiles give the same image, and the tiles ran."""
    import numpy as np

    from workflow_files import api_workflow

    def run(tiling: str | None) -> np.ndarray:
        prompt = api_workflow("op4ksr_upscale_4k")
        prompt["3"]["inputs"]["long_side"] = 128
        if tiling is None:
            del prompt["3"]["inputs"]["vae_tiling"]  # a workflow saved before the input existed
        else:
            prompt["3"]["inputs"]["vae_tiling"] = tiling
        return op4ksr_server.images(op4ksr_server.run(prompt), "4")[0].astype(int)

    before = op4ksr_server.log_path.read_text().count("tiled VAE decode in row bands")
    untiled, tiled, old = run("never"), run("always"), run(None)
    assert op4ksr_server.log_path.read_text().count("tiled VAE decode in row bands") == before + 1
    assert untiled.shape == (96, 128, 3) and untiled.std() > 1.0
    assert np.abs(tiled - untiled).max() <= 1  # uint8 rounding of float32-equal images
    np.testing.assert_array_equal(old, untiled)


@pytest.mark.skipif(not hasattr(torch, "AcceleratorError"), reason="this torch has no AcceleratorError")
def test_an_out_of_memory_inside_a_kernel_also_tiles(steps) -> None:
    """CUDA reports an OOM inside a kernel as ``torch.AcceleratorError`` (code 2), not ``OutOfMemoryError``:
    ``on_oom`` still retries in tiles, the bands still shrink; any other accelerator error is raised."""
    from sr4k.op4ksr_core.vae.banded import DEFAULT_BAND_VALUES

    def oom() -> torch.Tensor:
        raise torch.AcceleratorError("CUDA error: out of memory")

    def misaligned() -> torch.Tensor:
        raise torch.AcceleratorError("CUDA error: misaligned address")

    tiled = torch.ones(1)
    assert steps.vae_step(oom, lambda: tiled, "on_oom", "decode") is tiled
    with pytest.raises(torch.AcceleratorError, match="misaligned"):
        steps.vae_step(misaligned, lambda: tiled, "on_oom", "decode")
    tried: list[int] = []

    def run(bands) -> torch.Tensor:
        tried.append(bands.band_values)
        return oom() if len(tried) == 1 else tiled

    assert steps._banded(_comfy_vae("partitioned"), run, "decode") is tiled
    assert tried == [DEFAULT_BAND_VALUES, DEFAULT_BAND_VALUES // 4]
