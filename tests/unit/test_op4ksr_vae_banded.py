"""The banded (tiled) F16 VAE equals the untiled one: no seams, the partitioned shift applied once."""

from __future__ import annotations

import pytest
import torch

from small_vae import small_f16_vae
from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.banded import Bands, decode_banded, encode_banded

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vae() -> F16VAE:
    return small_f16_vae()


def _image(h: int, w: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    noise = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.4 - 0.2
    return (torch.stack([x, y, x * y])[None] * 0.7 + noise).clamp(-1, 1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("band_values", [1 << 12, 1 << 16])
def test_banded_encode_equals_untiled(vae: F16VAE, band_values: int) -> None:
    image = _image(48, 80)
    with torch.no_grad():
        ref = vae.encode(image)
    out = encode_banded(vae, image, Bands(CPU, CPU, band_values))
    assert out.shape == ref.shape == (1, 16, 3, 5)
    assert _rel(out, ref) < 1e-5


@pytest.mark.parametrize("mode", ["aligned", "partitioned"])
@pytest.mark.parametrize("band_values", [1 << 12, 1 << 16])
def test_banded_decode_equals_untiled(vae: F16VAE, mode: str, band_values: int) -> None:
    latent = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = vae.decode(latent, decode_mode=mode)
    out = decode_banded(vae, latent, Bands(CPU, CPU, band_values), mode)
    assert out.shape == ref.shape == (1, 3, 48, 80)
    assert _rel(out, ref) < 1e-5
    # Seam check where a per-tile decode would put one: no row step is out of line with its neighbours.
    steps = (out[..., 1:, :] - out[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    ref_steps = (ref[..., 1:, :] - ref[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    torch.testing.assert_close(steps, ref_steps, rtol=1e-4, atol=1e-6)


def test_partitioned_is_the_aligned_image_shifted_once(vae: F16VAE) -> None:
    """Interior of the banded partitioned decode = banded aligned decode moved one pixel down-right."""
    latent = torch.randn(1, 16, 3, 5, generator=torch.Generator().manual_seed(2))
    bands = Bands(CPU, CPU, 1 << 12)  # many bands: a per-band shift would break this
    aligned, partitioned = (
        decode_banded(vae, latent, bands, "aligned"),
        decode_banded(vae, latent, bands, "partitioned"),
    )
    torch.testing.assert_close(partitioned[..., 1:, 1:], aligned[..., :-1, :-1], rtol=0, atol=1e-6)


def test_bad_band_size_and_input_are_clear_errors(vae: F16VAE) -> None:
    with pytest.raises(ValueError, match="band_values=0"):
        Bands(CPU, CPU, 0)
    with pytest.raises(ValueError, match=r"channel\(s\) in dim 1"):
        encode_banded(vae, torch.zeros(1, 4, 32, 32), Bands(CPU, CPU))
