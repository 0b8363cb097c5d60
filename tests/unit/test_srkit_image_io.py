"""``srkit.image_io``: the shared image reader/writer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr4k.srkit.image_io import image_size, read_image, write_image


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
