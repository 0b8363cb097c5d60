"""GTASR to any size (x4 network passes, then an exact antialiased resize) with alpha, and the tile-preview
canvas: the pure parts and the CLI, on the small-config GTASR. The node in the real server:
``tests/server/test_node_gtasr_any_size.py``."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gtasr_support import any_size_reference, lowres
from sr4k.cli.main import main
from sr4k.gtasr_core import passes_for, upscale, upscale_to_size
from sr4k.srkit.sizing import resize_exact


def test_passes_are_whole_x4_steps_up_to_x64() -> None:
    """A pass more only when the final resize would otherwise enlarge by more than x1.25: "make it 4K" from a
    1000 px side (x4.096) is one pass, not a second one on a 16x larger image shrunk back down."""
    cases = {
        (25, 25): 1,
        (100, 100): 1,
        (400, 400): 1,
        (400, 401): 1,
        (500, 500): 1,
        (501, 501): 2,
        (1600, 1600): 2,
        (1601, 10): 2,
        (2000, 2000): 2,
        (2001, 2001): 3,
    }
    for size, n in cases.items():
        assert passes_for(100, 100, size) == n, size
    assert passes_for(1000, 1000, (4096, 4096)) == 1
    with pytest.raises(
        ValueError, match=r"x81\.9, more than GTASR's 3 x4 passes and a final x1\.25 resize \(x80\)"
    ):
        passes_for(20, 28, (1638, 2293))


def test_resize_is_pillows_antialiased_bicubic() -> None:
    """The reference: Pillow's BICUBIC resize (always antialiased), per float channel."""
    x = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for size in [(11, 17), (30, 40), (37, 20)]:
        ref = np.stack(
            [
                np.asarray(
                    Image.fromarray(c.numpy().astype(np.float32), "F").resize(size[::-1], Image.BICUBIC)
                )
                for c in x
            ]
        )
        got = resize_exact(x[None], size)[0].numpy()
        assert got.shape == ref.shape and np.abs(got - ref.clip(0, 1)).max() < 1e-6
    assert resize_exact(x[None], (37, 53)) is not None and torch.equal(resize_exact(x[None], (37, 53))[0], x)


def test_driver_runs_the_passes_and_resizes_rgb_and_alpha(files: tuple) -> None:
    tiny = files[2]
    lr = torch.rand(1, 4, 12, 10, generator=torch.Generator().manual_seed(1))
    calls: list[tuple[int, tuple]] = []

    def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
        calls.append((k, tuple(x.shape)))
        return upscale(tiny, x, seed=3)

    for size, n in [((48, 40), 1), ((30, 25), 1), ((100, 83), 2)]:
        calls.clear()
        out = upscale_to_size(lr, size, run_pass)
        assert out.shape == (1, 4, *size) and [k for k, _ in calls] == list(range(n))
        torch.testing.assert_close(out, any_size_reference(tiny, lr, size, 3), rtol=0, atol=1e-6)
    # Exactly x4: one pass and no resize, so the old x4 output is unchanged bit for bit.
    assert torch.equal(upscale_to_size(lr[:, :3], (48, 40), run_pass), upscale(tiny, lr[:, :3], seed=3))


def test_resize_runs_on_the_resize_device(files: tuple) -> None:
    """The passes return host images; a resize (any scale but x4) moves to ``resize_device`` (the meta device
    standing in for the GPU) with the alpha, and an exact x4 result stays where the pass left it."""
    tiny, meta = files[2], torch.device("meta")
    lr = torch.rand(1, 4, 12, 10, generator=torch.Generator().manual_seed(1))

    def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
        return upscale(tiny, x, seed=3)

    resized = upscale_to_size(lr, (30, 25), run_pass, resize_device=meta)
    assert resized.device == meta and resized.shape == (1, 4, 30, 25)
    exact = upscale_to_size(lr, (48, 40), run_pass, resize_device=meta)
    assert exact.device.type == "cpu"
    torch.testing.assert_close(exact, upscale_to_size(lr, (48, 40), run_pass), rtol=0, atol=0)


def test_a_full_resize_device_leaves_the_resize_on_the_host(
    files: tuple, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tiny, meta = files[2], torch.device("meta")
    lr = torch.rand(1, 4, 12, 10, generator=torch.Generator().manual_seed(2))
    any_size = importlib.import_module("sr4k.gtasr_core.any_size")
    real = any_size.resize_exact

    def full_on_meta(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if image.device == meta:
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        return real(image, size)

    def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
        return upscale(tiny, x, seed=3)

    expected = upscale_to_size(lr, (30, 25), run_pass)
    monkeypatch.setattr(any_size, "resize_exact", full_on_meta)
    with caplog.at_level(logging.WARNING, logger="sr4k.gtasr_core.any_size"):
        out = upscale_to_size(lr, (30, 25), run_pass, resize_device=meta)
    assert out.device.type == "cpu" and torch.equal(out, expected)
    assert "no room on meta for the resize to 25x30; resizing on cpu" in caplog.text


def _tensor8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float().div(255).permute(2, 0, 1)[None]


@pytest.mark.parametrize(
    ("flags", "size"),
    [(["--scale", "2.5"], (30, 40)), (["--long-side", "100"], (75, 100)), (["--scale", "16"], (192, 256))],
)
def test_cli_scale_and_long_side(files: tuple, tmp_path: Path, flags: list[str], size: tuple) -> None:
    pth, _, tiny = files
    a = lowres(4, 12, 16, channels=4)
    Image.fromarray(a).save(tmp_path / "in.png")
    assert (
        main(
            [
                "upscale",
                "--weights",
                str(pth),
                "--device",
                "cpu",
                "--seed",
                "2",
                *flags,
                str(tmp_path / "in.png"),
                str(tmp_path / "out.png"),
            ]
        )
        == 0
    )
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(float) / 255
    expected = any_size_reference(tiny, _tensor8(a), size, 2)[0].permute(1, 2, 0).numpy()
    assert out.shape == (*size, 4)
    assert np.abs(out - expected).max() <= 0.5 / 255 + 1e-6  # PNG rounding of the same float image


def test_cli_refuses_both_size_flags(files: tuple, tmp_path: Path) -> None:
    Image.fromarray(lowres(0)).save(tmp_path / "in.png")
    args = ["upscale", "--weights", str(files[0]), "--scale", "2", "--long-side", "64"]
    assert main([*args, str(tmp_path / "in.png"), str(tmp_path / "o.png")]) == 1


def test_preview_canvas_ends_as_the_output(files: tuple) -> None:
    """Without ComfyUI's JPEG step: the canvas after the last tile is exactly the (blended) output."""
    from sr4k.nodes.gtasr_preview import TilePreview

    tiny, lr = files[2], _tensor8(lowres(3, 24, 40))
    preview, shots = TilePreview(side=512), []

    def paste(i: int, rect: tuple, tile: torch.Tensor) -> None:
        preview.paste(i, rect, tile)
        shots.append(preview.canvas.clone())

    preview.start(lr, tiny.scale)
    out = upscale(tiny, lr, seed=1, tile=16, overlap=8, on_tile=paste)
    assert len(shots) == 2 * 4  # 2 x 4 tiles of 16 with overlap 8 over 24 x 40
    torch.testing.assert_close(shots[-1], out, rtol=0, atol=1e-6)
    assert (shots[0] - out).abs().mean() > 10 * (shots[-1] - out).abs().mean() + 1e-3
    kind, image, side = preview.take()
    assert (kind, side, image.size) == ("JPEG", 512, (160, 96))
    assert preview.take() is None  # one preview per pasted tile
