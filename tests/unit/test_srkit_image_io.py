"""``srkit.image_io``: the shared image reader/writer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin

from sr4k.srkit.image_io import icc_profile, image_size, read_image, write_image


def test_png_round_trip_is_exact_and_modes_convert(tmp_path: Path) -> None:
    x = torch.randint(0, 256, (3, 5, 7)).float() / 255
    write_image(tmp_path / "x.png", x)
    assert torch.equal(read_image(tmp_path / "x.png"), x)
    assert image_size(tmp_path / "x.png") == (5, 7)
    Image.fromarray(np.full((4, 6), 128, np.uint8), "L").save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 6) and torch.allclose(g, torch.full_like(g, 128 / 255))
    Image.fromarray(np.full((2, 3), 65535, np.uint16)).save(tmp_path / "w.png")  # 16-bit grey
    assert torch.allclose(read_image(tmp_path / "w.png"), torch.ones(3, 2, 3))


def test_alpha_is_kept_only_when_asked_and_only_where_the_format_can_store_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x = torch.randint(0, 256, (4, 3, 5)).float() / 255
    write_image(tmp_path / "a.png", x[None])
    assert torch.equal(read_image(tmp_path / "a.png", keep_alpha=True), x)
    assert torch.equal(read_image(tmp_path / "a.png"), x[:3])
    with caplog.at_level(logging.WARNING):
        write_image(tmp_path / "a.jpg", x)
    assert "cannot store alpha" in caplog.text
    assert read_image(tmp_path / "a.jpg", keep_alpha=True).shape == (3, 3, 5)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[3\|4, H, W\]"):
        write_image(tmp_path / "bad.png", torch.zeros(2, 2, 2))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.png is not a readable image"):
        read_image(tmp_path / "junk.png")


def _photo(h: int = 12, w: int = 20, seed: int = 0) -> np.ndarray:
    """A smooth colour image (JPEG keeps it well) with a distinct corner, so a turn or a mirror shows."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], axis=-1)
    a[:3, :3] = (255, 0, 255)
    return a.astype(np.uint8)


def test_exif_orientation_is_applied_as_comfyui_loadimage_does(tmp_path: Path) -> None:
    """A phone JPEG stored 20 wide x 12 high with Orientation 6 (turn 90° clockwise to view) reads 12 x 20, the
    same pixels as PIL.ImageOps.exif_transpose gives; image_size agrees with read_image."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(_photo()).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    x = read_image(tmp_path / "phone.jpg")
    assert x.shape == (3, 20, 12) and image_size(tmp_path / "phone.jpg") == (20, 12)
    with Image.open(tmp_path / "phone.jpg") as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert torch.equal(x, torch.from_numpy(upright.copy()).permute(2, 0, 1).float() / 255)


def test_colour_key_transparency_becomes_alpha(tmp_path: Path) -> None:
    grey = np.array([[0, 50], [100, 0]], np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png", transparency=0)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(10, 20, 30))
    l_alpha = read_image(tmp_path / "l.png", keep_alpha=True)
    assert l_alpha.shape == (4, 2, 2) and l_alpha[3].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert read_image(tmp_path / "rgb.png", keep_alpha=True)[3].tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert read_image(tmp_path / "l.png").shape == (3, 2, 2)  # alpha only when asked


def test_32_bit_images_are_refused_not_flattened(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="32-bit float samples .* Convert it to a 16-bit PNG or TIFF"):
        read_image(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 4), 70000, np.int32), "I").save(tmp_path / "i.tif")
    with pytest.raises(ValueError, match="32-bit integer samples"):
        read_image(tmp_path / "i.tif")


def test_damaged_file_and_unsupported_suffix_are_told_apart(tmp_path: Path) -> None:
    Image.fromarray(_photo()).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.png is not a readable image") as damaged:
        read_image(tmp_path / "cut.png")
    assert "damaged or truncated" in str(damaged.value) and "use one of" not in str(damaged.value)
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(ValueError, match=r"photo.heic is not a readable image .*; use one of \.png"):
        read_image(tmp_path / "photo.heic")


def test_decompression_bomb_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(_photo(16, 16)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 256 px is more than twice the limit, as 180 MP is
    for read in (read_image, image_size):
        with pytest.raises(
            ValueError, match="big.png is too large to read: .* downscale or crop the image first"
        ):
            read(tmp_path / "big.png")


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_goes_from_input_to_output(tmp_path: Path, suffix: str) -> None:
    profile = _srgb_profile()
    Image.fromarray(_photo()).save(tmp_path / f"in{suffix}", icc_profile=profile)
    assert icc_profile(tmp_path / f"in{suffix}") == profile
    write_image(tmp_path / f"out{suffix}", read_image(tmp_path / f"in{suffix}"), icc_profile=profile)
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.info.get("icc_profile") == profile
    Image.fromarray(_photo()).save(tmp_path / f"plain{suffix}")
    assert icc_profile(tmp_path / f"plain{suffix}") is None


def test_a_grey_profile_is_not_carried_to_an_rgb_output(tmp_path: Path) -> None:
    grey = bytearray(_srgb_profile())
    grey[16:20] = b"GRAY"  # the header's data colour space: what the profile describes
    Image.fromarray(np.full((4, 4), 9, np.uint8), "L").save(tmp_path / "g.png", icc_profile=bytes(grey))
    assert icc_profile(tmp_path / "g.png") is None


def test_jpeg_and_webp_outputs_keep_the_detail(tmp_path: Path) -> None:
    """JPEG: quality 95 with full-resolution chroma (Pillow's default is 75 with 4:2:0); WebP: lossless."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (3, 32, 32))).float() / 255
    write_image(tmp_path / "o.webp", x)
    assert torch.equal(read_image(tmp_path / "o.webp"), x)
    write_image(tmp_path / "o.jpg", x)
    with Image.open(tmp_path / "o.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
        luma_table = im.quantization[0]
    reference = tmp_path / "q95.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(reference, quality=95, subsampling=0)
    with Image.open(reference) as im:
        assert luma_table == im.quantization[0]


def test_orientation_is_the_headers_for_every_path(tmp_path: Path) -> None:
    """A PNG whose eXIf chunk follows the pixels: image_size (header only) and read_image, 8-bit and 16-bit,
    all see the same image (the pixels as stored), so the size checks made before loading hold."""
    import struct
    import zlib

    import cv2

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6

    def late_exif(src: Path, dst: Path) -> Path:
        png = src.read_bytes()
        end = png.rfind(b"IEND") - 4
        body = b"eXIf" + exif.tobytes()
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        dst.write_bytes(png[:end] + chunk + png[end:])
        return dst

    Image.fromarray(np.zeros((12, 20, 3), np.uint8)).save(tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "a16.png"), np.full((12, 20, 3), 1000, np.uint16))
    for name in ("a.png", "a16.png"):
        path = late_exif(tmp_path / name, tmp_path / f"late_{name}")
        assert image_size(path) == (12, 20) and tuple(read_image(path).shape) == (3, 12, 20), name
