"""``jpeg_compress(codec="basicsr")`` against the golden outputs of BasicSR's DiffJPEG (GTASR's training JPEG)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sr4k.srkit.degradations import PRESETS, DegradationConfig, degrade
from sr4k.srkit.jpeg import jpeg_compress
from sr4k.training.gtasr.config import GTASRTrainConfig

TAGS = ("rect60x84", "sq64")


@pytest.fixture(scope="module")
def golden(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(fixtures_dir / "jpeg" / "diffjpeg_golden.safetensors"))


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


@pytest.mark.parametrize("tag", TAGS)
def test_basicsr_codec_reproduces_the_reference(golden: dict[str, torch.Tensor], tag: str) -> None:
    x, q, ref = golden[f"{tag}_input"], golden[f"{tag}_quality"], golden[f"{tag}_output"]
    q_before = q.clone()
    out = jpeg_compress(x, q, codec="basicsr")
    assert out.shape == ref.shape and out.dtype == torch.float32
    within = float(((out - ref).abs() <= 1e-4).float().mean())
    assert within >= 0.999, f"{tag}: only {within:.5f} of the values within 1e-4"
    for i in range(x.shape[0]):  # each image (each quality) on its own
        assert psnr01(out[i], ref[i]) >= 60.0, f"{tag}[{i}] q={float(q[i])}"
    torch.testing.assert_close(q, q_before, rtol=0, atol=0)  # the reference overwrites it; we must not
    # The libjpeg-faithful default is a different function (8-bit levels, clamped tables, fancy upsampling):
    assert psnr01(jpeg_compress(x, q), ref) < 40.0


def test_basicsr_codec_is_batched_per_image_and_passes_gradients(golden: dict[str, torch.Tensor]) -> None:
    x, q = golden["rect60x84_input"], golden["rect60x84_quality"]
    both = jpeg_compress(x, q, codec="basicsr")
    for i in range(x.shape[0]):
        torch.testing.assert_close(both[i : i + 1], jpeg_compress(x[i : i + 1], float(q[i]), codec="basicsr"))
    leaf = x[:1].clone().requires_grad_(True)
    jpeg_compress(leaf, 50.0, codec="basicsr").mean().backward()
    assert (
        leaf.grad is not None and bool(torch.isfinite(leaf.grad).all()) and float(leaf.grad.abs().sum()) > 0
    )
    # Not on 8-bit levels (the reference never rounds its output), unlike the libjpeg codec.
    assert float((both * 255 - torch.round(both * 255)).abs().max()) > 0.01
    lib = jpeg_compress(x, q)
    torch.testing.assert_close(lib * 255, torch.round(lib * 255), rtol=0, atol=1e-4)


def test_gtasr_preset_uses_the_basicsr_codec_and_others_libjpeg() -> None:
    assert PRESETS["gtasr"].jpeg_codec == "basicsr"
    assert GTASRTrainConfig().degradation == "gtasr"  # the GTASR trainer's default degradation
    assert {name: cfg.jpeg_codec for name, cfg in PRESETS.items() if name != "gtasr"} == {
        name: "libjpeg" for name in PRESETS if name != "gtasr"
    }
    assert DegradationConfig().jpeg_codec == "libjpeg"
    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    a = degrade(hr, PRESETS["gtasr"], torch.Generator().manual_seed(5)).lr
    b = degrade(
        hr, dataclasses.replace(PRESETS["gtasr"], jpeg_codec="libjpeg"), torch.Generator().manual_seed(5)
    ).lr
    assert float((a - b).abs().max()) > 1 / 255  # the codec choice reaches the pipeline


def test_codec_errors_name_the_fix() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"unknown JPEG codec 'pillow'.*libjpeg.*basicsr"):
        jpeg_compress(x, 50, codec="pillow")
    with pytest.raises(ValueError, match="quality < 100"):
        jpeg_compress(x, 100, codec="basicsr")
    with pytest.raises(ValueError, match="use codec='libjpeg'"):
        jpeg_compress(x, 50, codec="basicsr", chroma_subsampling=False)
    with pytest.raises(ValueError, match="jpeg_codec='x'"):
        DegradationConfig(jpeg_codec="x")
