"""F16 VAE at full FLUX size against the Diffusion-4K golden fixture (fixtures/f16vae), weights in both layouts."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.keys import diffusers_to_bfl_vae
from sr4k.op4ksr_core.vae.latent_format import F16_LATENT
from sr4k.op4ksr_core.vae.loader import load_f16_vae

TOL = {"rtol": 1e-4, "atol": 1e-4}


def deterministic_value(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The fixtures README initialisation rule for one parameter."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) >= 2:
        value = t / math.sqrt(math.prod(shape[1:]))
    elif key.endswith("weight"):
        value = 1 + 0.05 * t
    else:
        value = 0.05 * t
    return value.float()


@pytest.fixture(scope="module")
def diffusers_sd(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    manifest = json.loads((fixtures_dir / "f16vae" / "state_dict_manifest.json").read_text())
    return {e["key"]: deterministic_value(e["key"], tuple(e["shape"])) for e in manifest["entries"]}


@pytest.fixture(scope="module")
def golden(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(fixtures_dir / "f16vae" / "golden_io.safetensors"))


@pytest.fixture(scope="module")
def vae(diffusers_sd: dict[str, torch.Tensor]) -> F16VAE:
    return load_f16_vae(diffusers_sd, "partitioned")


@pytest.mark.parametrize("layout", ["diffusers", "bfl"])
def test_golden_encode_and_both_decodes(layout: str, diffusers_sd: dict, golden: dict) -> None:
    sd = diffusers_sd if layout == "diffusers" else diffusers_to_bfl_vae(diffusers_sd)
    model = load_f16_vae(sd, "partitioned", chunk_rows=48)  # 128 rows: three chunks, the last one short
    with torch.no_grad():
        mean, logvar = model.encode_moments(golden["sq128_image"])
        torch.testing.assert_close(mean, golden["sq128_latent_mean"], **TOL)
        torch.testing.assert_close(logvar, golden["sq128_latent_logvar"], **TOL)
        latent = golden["sq128_latent_in"]
        partitioned = model.decode(latent)
        torch.testing.assert_close(partitioned, golden["sq128_decoded_partitioned"], **TOL)
        aligned = model.decode(latent, decode_mode="aligned")
        torch.testing.assert_close(aligned, golden["sq128_decoded_full"], **TOL)
    assert golden["sq128_decoded_full"].abs().max() > 0.5  # the check is not vacuous
    # Our two modes obey the fixture README's relation exactly.
    assert torch.equal(partitioned[..., 1:, 1:], aligned[..., :-1, :-1])


def test_fixture_relation_partitioned_is_shifted_full(golden: dict) -> None:
    part, full = golden["sq128_decoded_partitioned"], golden["sq128_decoded_full"]
    assert torch.equal(part[..., 1:, 1:], full[..., :-1, :-1])
    assert (part - full).abs().max() > 0.1


@pytest.mark.parametrize("mode", ["partitioned", "aligned"])
def test_chunked_decode_equals_unchunked_on_odd_latent(vae: F16VAE, mode: str) -> None:
    latent = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(7))  # -> 48×80 image
    with torch.no_grad():
        whole = vae.decode(latent, decode_mode=mode, chunk_rows=10_000)
        chunked = vae.decode(latent, decode_mode=mode, chunk_rows=7)  # 7 chunks, odd rows
    assert whole.shape == (1, 3, 48, 80)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_encode_sample_and_latent_helpers(vae: F16VAE, golden: dict) -> None:
    image = golden["sq128_image"][..., :32, :48]
    with torch.no_grad():
        mean, logvar = vae.encode_moments(image)
        assert torch.equal(vae.encode(image), mean)
        assert torch.equal(vae(image), vae.decode(mean))
        sample = vae.encode(image, sample=True, generator=torch.Generator().manual_seed(11))
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(sample, mean + torch.exp(0.5 * logvar) * noise)
    torch.testing.assert_close(vae.to_model_latent(mean), (mean - 0.1159) * 0.3611)
    torch.testing.assert_close(vae.from_model_latent(vae.to_model_latent(mean)), mean)
    assert vae.latent_format is not None and vae.latent_format == F16_LATENT and vae.downscale == 16


def test_bad_inputs_get_clear_errors(vae: F16VAE) -> None:
    with pytest.raises(ValueError, match=r"not a multiple of 16.*pad or crop to 96x128"):
        vae.encode_moments(torch.zeros(1, 3, 100, 130))
    with pytest.raises(ValueError, match=r"3 channels \(RGB\), got 4 channel\(s\) in dim 1"):
        vae.encode_moments(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"ComfyUI IMAGE is B×H×W×C"):
        vae.encode_moments(torch.zeros(1, 32, 32, 3))
    with pytest.raises(ValueError, match=r"4-D \[B, 3, H, W\], got shape \(3, 32, 32\)"):
        vae.encode_moments(torch.zeros(3, 32, 32))
    with pytest.raises(TypeError, match=r"x.float\(\) / 127.5 - 1"):
        vae.encode_moments(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"B×16×h×w.*got \(1, 4, 8, 8\).*SD1/SDXL"):
        vae.decode(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="decode_mode='tiled'"):
        vae.decode(torch.zeros(1, 16, 2, 2), decode_mode="tiled")


# The released NCHW graph, unfused: this file pins its bits, FLOPs or memory (tests/support/perf_pins.py).
pytestmark = pytest.mark.usefixtures("nchw_unfused")
