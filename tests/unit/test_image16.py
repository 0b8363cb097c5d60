"""16-bit images: ``srkit.image_io`` reads 16-bit PNG/TIFF without losing precision and writes them back
exactly; the CLI keeps 16 bits for 16-bit inputs and on ``--bits 16``."""

from __future__ import annotations

import logging
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps

from gtasr_support import lowres
from sr4k.cli.main import main
from sr4k.gtasr_core import upscale
from sr4k.srkit.image16 import orient
from sr4k.srkit.image_io import image_bits, image_size, read_image, write_image

SUFFIXES = (".png", ".tif")


def _all_values(channels: int = 3) -> np.ndarray:
    """``[256, 256, channels]`` uint16: every 16-bit value once per channel, in different orders."""
    v = np.arange(65536, dtype=np.int64)
    planes = [v, 65535 - v, (v * 40503) % 65536, (v * 7919 + 12345) % 65536][:channels]
    return np.stack(planes, axis=-1).reshape(256, 256, channels).astype(np.uint16)


def _write_raw(path: Path, rgb: np.ndarray) -> None:
    """An independent 16-bit writer (OpenCV directly, BGR order) for the reader's tests."""
    bgr = np.concatenate([rgb[..., 2::-1], rgb[..., 3:]], axis=-1) if rgb.ndim == 3 else rgb
    assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))


def _read_raw(path: Path) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return np.concatenate([a[..., 2::-1], a[..., 3:]], axis=-1) if a.ndim == 3 else a


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("channels", [3, 4])
def test_every_16_bit_value_round_trips_exactly(tmp_path: Path, suffix: str, channels: int) -> None:
    a = _all_values(channels)
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    _write_raw(src, a)
    assert image_bits(src) == 16
    x = read_image(src, keep_alpha=True)
    assert x.dtype == torch.float32 and x.shape == (channels, 256, 256)
    # Exactly v / 65535 (in float32): no 8-bit truncation on the way in.
    assert torch.equal(x, torch.from_numpy(a.astype(np.float32) / np.float32(65535)).permute(2, 0, 1))
    assert len(torch.unique(x[0])) == 65536
    write_image(dst, x, bits=16)
    assert image_bits(dst) == 16
    np.testing.assert_array_equal(_read_raw(dst), a)
    assert read_image(src).shape[0] == 3  # alpha only when asked


def test_16_bit_grey_and_8_bit_files(tmp_path: Path) -> None:
    grey = _all_values(1)[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")  # Pillow's own 16-bit grey PNG
    assert image_bits(tmp_path / "g.png") == 16
    x = read_image(tmp_path / "g.png")
    assert torch.equal(x[0], torch.from_numpy(grey.astype(np.float64) / 65535).float())
    write_image(tmp_path / "g16.png", x, bits=16)
    np.testing.assert_array_equal(_read_raw(tmp_path / "g16.png"), np.stack([grey] * 3, axis=-1))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "e.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "e.tif")
    assert image_bits(tmp_path / "e.png") == image_bits(tmp_path / "e.tif") == 8


def test_16_bits_where_the_format_cannot_store_them_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"\.jpg cannot store 16 bits.*\.png"):
        write_image(tmp_path / "x.jpg", torch.rand(3, 4, 4), bits=16)
    with pytest.raises(ValueError, match="bits=12"):
        write_image(tmp_path / "x.png", torch.rand(3, 4, 4), bits=12)
    _write_raw(tmp_path / "in.png", _all_values())
    monkeypatch.setitem(sys.modules, "cv2", None)  # OpenCV not installed
    with pytest.raises(ValueError, match="pip install opencv-python-headless"):
        read_image(tmp_path / "in.png")


def _lowres16(seed: int) -> np.ndarray:
    """The CLI test image at 16 bits, with low bits set (so 8-bit truncation would show)."""
    a = lowres(seed, 12, 16).astype(np.uint16) * 257
    return a + np.random.default_rng(seed).integers(0, 257, a.shape).astype(np.uint16)


def test_cli_keeps_16_bits_and_follows_bits(
    files: tuple,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pth, _, net = files
    a = _lowres16(2)
    _write_raw(tmp_path / "in.png", a)
    base = ["upscale", "--weights", str(pth), "--device", "cpu", "--seed", "5"]
    assert main([*base, str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 0
    assert image_bits(tmp_path / "out.png") == 16
    lr = torch.from_numpy(a.astype(np.float32) / np.float32(65535)).permute(2, 0, 1)[None]
    expected = (upscale(net, lr, seed=5)[0].permute(1, 2, 0).double() * 65535).round().numpy()
    got = _read_raw(tmp_path / "out.png").astype(np.float64)
    assert got.shape == (4 * a.shape[0], 4 * a.shape[1], 3)
    assert np.abs(got - expected).max() <= 1  # the core's float output, to 16 bits
    assert len(np.unique(got)) > 4 * 256  # genuinely 16-bit content, not 8-bit values scaled
    # --bits 8 writes 8 bits from the same 16-bit input; an 8-bit input with --bits 16 writes 16.
    assert main([*base, "--bits", "8", str(tmp_path / "in.png"), str(tmp_path / "o8.png")]) == 0
    assert image_bits(tmp_path / "o8.png") == 8
    assert np.abs(np.asarray(Image.open(tmp_path / "o8.png")).astype(float) - expected / 257).max() <= 1
    Image.fromarray(lowres(2, 12, 16)).save(tmp_path / "in8.png")
    assert main([*base, "--bits", "16", str(tmp_path / "in8.png"), str(tmp_path / "o16.tif")]) == 0
    assert image_bits(tmp_path / "o16.tif") == 16
    # A 16-bit input to an 8-bit-only format: 8 bits with a warning; --bits 16 there: refused before loading.
    with caplog.at_level(logging.WARNING):
        assert main([*base, str(tmp_path / "in.png"), str(tmp_path / "o.jpg")]) == 0
    assert "writing 8 bits" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main([*base, "--bits", "16", str(tmp_path / "in.png"), str(tmp_path / "o2.jpg")]) == 1
    assert "--bits 16" in caplog.text and not (tmp_path / "o2.jpg").exists()


def _png_with_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """An independent chunk writer for the tests: ``payload`` as a ``kind`` chunk right after IHDR."""
    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_as_pillow_exif_transpose_does(orientation: int) -> None:
    a = np.arange(3 * 5 * 2, dtype=np.uint16).reshape(3, 5, 2)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    im = Image.fromarray(a[..., 0].astype(np.uint8), "L")
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    got = orient(a, orientation)
    np.testing.assert_array_equal(got[..., 0], expected)
    np.testing.assert_array_equal(got[..., 1], expected + 1)  # every channel turns alike


def test_16_bit_png_with_an_exif_orientation_reads_upright(tmp_path: Path) -> None:
    a = _lowres16(3)  # 12 high, 16 wide
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored turned: view it turned 90° clockwise
    bgr = np.ascontiguousarray(a[..., ::-1])
    png = _png_with_chunk(cv2.imencode(".png", bgr)[1].tobytes(), b"eXIf", exif.tobytes())
    (tmp_path / "turned.png").write_bytes(png)
    x = read_image(tmp_path / "turned.png")
    assert x.shape == (3, 16, 12) and image_size(tmp_path / "turned.png") == (16, 12)
    upright = np.rot90(a, k=-1)  # 90° clockwise
    assert torch.equal(x, torch.from_numpy(upright.astype(np.float32) / np.float32(65535)).permute(2, 0, 1))


def test_16_bit_png_keeps_the_icc_profile_and_non_ascii_names_work(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "café ü 写真.png"
    x = torch.from_numpy(_lowres16(4).astype(np.float32) / np.float32(65535)).permute(2, 0, 1)
    write_image(path, x, bits=16, icc_profile=profile)
    with Image.open(path) as im:
        assert im.info["icc_profile"] == profile
    assert image_bits(path) == 16 and torch.equal(read_image(path), x)
