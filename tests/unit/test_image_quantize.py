"""Writing images fast and exactly: ``srkit.image_io.quantize`` gives the levels of the reference
``round(clamp(x, 0, 1) * L)`` for every input (half steps, out of range, ±inf) and leaves the caller's tensor alone;
the files (PNG with the run-length strategy, 8 and 16 bits) hold exactly those levels; benchmarks/png_encode.py's
smoke run checks both strategies of both encoders are lossless."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr4k.srkit.image_io import PNG_OPTIONS, quantize, read_image, write_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import png_encode  # benchmarks/ is a script folder, not a package


def _reference(x: torch.Tensor, levels: int, dtype: torch.dtype) -> torch.Tensor:
    return (x.clamp(0, 1) * levels).round().to(dtype).permute(1, 2, 0)


def _hard_values(levels: int, dtype: torch.dtype) -> torch.Tensor:
    """Every level, every half step between levels (ties round to even), out-of-range and infinite values, noise."""
    k = torch.arange(levels + 1, dtype=dtype)
    special = torch.tensor([-1.0, -1e-9, 1 + 1e-9, 2.0, float("inf"), float("-inf"), -0.0], dtype=dtype)
    rnd = torch.rand(4096, generator=torch.Generator().manual_seed(0), dtype=dtype) * 1.2 - 0.1
    flat = torch.cat([k / levels, (k + 0.5) / levels, special, rnd])
    pad = (-flat.numel()) % 6
    return torch.cat([flat, torch.zeros(pad, dtype=dtype)]).reshape(3, 2, -1)


@pytest.mark.parametrize(
    ("levels", "src", "dst"), [(255, torch.float32, torch.uint8), (65535, torch.float64, torch.int32)]
)
def test_same_levels_as_the_reference(levels: int, src: torch.dtype, dst: torch.dtype) -> None:
    x = _hard_values(levels, src)
    before = x.clone()
    q = quantize(x, levels, dst)
    assert torch.equal(q, _reference(x, levels, dst))
    assert q.is_contiguous() and q.shape == (x.shape[1], x.shape[2], 3) and q.dtype == dst
    assert torch.equal(x, before)  # the caller's tensor is not modified


def test_written_png_holds_the_reference_levels(tmp_path: Path) -> None:
    x = _hard_values(255, torch.float32)
    write_image(tmp_path / "q.png", x)
    assert np.array_equal(np.array(Image.open(tmp_path / "q.png")), _reference(x, 255, torch.uint8).numpy())


def test_png_is_written_with_the_run_length_strategy_and_reads_back_exactly(tmp_path: Path) -> None:
    assert PNG_OPTIONS == {"compress_level": 1, "compress_type": zlib.Z_RLE}
    a = png_encode.photo_like(96, 1.0)
    x = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    write_image(tmp_path / "a.png", x)
    assert torch.equal(read_image(tmp_path / "a.png"), x)
    # The file is the RLE encoding (the default strategy gives other bytes for this image).
    assert (tmp_path / "a.png").read_bytes() == png_encode.pillow_8bit(a, rle=True)
    assert png_encode.pillow_8bit(a, rle=True) != png_encode.pillow_8bit(a, rle=False)


def test_png_encode_benchmark_smoke() -> None:
    rows = png_encode.main(["--smoke", "--no-write"])["rows"]  # raises if any encoding is not lossless
    assert {(r["encoder"], r["strategy"]) for r in rows} >= {
        ("Pillow 8-bit", "Z_RLE"),
        ("OpenCV 16-bit", "Z_RLE"),
    }
