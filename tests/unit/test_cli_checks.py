"""``sr4k upscale`` refuses bad option values, and inputs too small for the requested size, before it loads a
model (for OP4KSR, tens of GiB of FLUX weights). The weight files given here do not exist or are not weights, so
an error about them would show that the model was being loaded first."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from gtasr_support import lowres
from sr4k.cli.main import main


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scale", "0"], "--scale 0.0: give a ratio above 0"),
        (["--scale", "-2"], "--scale -2.0: give a ratio above 0"),
        (["--long-side", "0"], "--long-side 0: give a length in pixels"),
        (["--tiling", "force", "--tile", "0"], "--tile 0 --overlap 64: tiles need --tile > 0"),
        (["--tile", "16", "--overlap", "16"], "0 <= --overlap < --tile"),
    ],
)
def test_gtasr_option_values_are_checked_before_the_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, options: list[str], message: str
) -> None:
    Image.fromarray(lowres(1, 16, 16)).save(tmp_path / "in.png")
    argv = ["upscale", "--weights", str(tmp_path / "none.pth"), "--device", "cpu", *options]
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main([*argv, str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 1
    assert message in caplog.text and "none.pth" not in caplog.text


def test_input_beyond_gtasr_x64_fails_from_its_header_before_the_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Image.fromarray(lowres(1, 8, 8)).save(tmp_path / "in.png")
    argv = ["upscale", "--weights", str(tmp_path / "none.pth"), "--long-side", "4096"]
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main([*argv, str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 1
    assert "1 of 1 images failed: in.png (8x8 -> 4096x4096 is x512.0, more than GTASR's" in caplog.text
    assert "none.pth" not in caplog.text


def test_op4ksr_option_values_are_checked_before_flux_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Image.fromarray(lowres(1, 16, 16)).save(tmp_path / "in.png")
    for name in ("flux.safetensors", "vae.safetensors"):
        (tmp_path / name).write_bytes(b"not weights")  # loading them would fail with another message
    argv = ["upscale", "--model", "op4ksr", "--flux", str(tmp_path / "flux.safetensors")]
    argv += ["--vae", str(tmp_path / "vae.safetensors"), "--device", "cpu", "--scale", "-1"]
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main([*argv, str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 1
    assert "--scale -1.0: give a ratio above 0" in caplog.text
