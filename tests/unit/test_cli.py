"""The ``sr4k`` CLI run in-process (``main([...])``) on a small GTASR checkpoint and tiny PNGs.

Downloads go to a local Hugging-Face-like server on 127.0.0.1 (``test_srkit_download.hub``), never out.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageCms

from comfy_harness import REPO
from gtasr_support import LR_H, LR_W, lowres
from local_hub import LocalHub
from sr4k.cli.main import main
from sr4k.gtasr_core import GTASRNet, load_gtasr, upscale
from sr4k.srkit.model_registry import GTASR_FINAL


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float().div(255).permute(2, 0, 1)[None]


def _expected(net: GTASRNet, a: np.ndarray, seed: int, **kw: object) -> np.ndarray:
    x = _tensor(a)
    out = upscale(net, x[:, :3], seed=seed, **kw)
    if x.shape[1] == 4:
        alpha = F.interpolate(x[:, 3:], scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
        out = torch.cat([out, alpha], dim=1)
    return (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_upscale_file_equals_the_core(files: tuple, tmp_path: Path) -> None:
    pth, _, net = files
    a = lowres(1)
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
                "3",
                str(tmp_path / "in.png"),
                str(tmp_path / "out.png"),
            ]
        )
        == 0
    )
    out = np.array(Image.open(tmp_path / "out.png"))
    assert out.shape == (4 * LR_H, 4 * LR_W, 3)
    expected = _expected(net, a, 3)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.std() > 5  # a real image, not a constant
    # A different seed is a different image; the same seed is the same file.
    main(
        [
            "upscale",
            "--weights",
            str(pth),
            "--device",
            "cpu",
            "--seed",
            "4",
            str(tmp_path / "in.png"),
            str(tmp_path / "seed4.png"),
        ]
    )
    assert np.abs(np.array(Image.open(tmp_path / "seed4.png")).astype(int) - out).mean() > 1


def test_safetensors_from_convert_gives_the_same_image(files: tuple, tmp_path: Path) -> None:
    pth, _, _ = files
    st = tmp_path / "converted.safetensors"
    assert main(["convert", str(pth), str(st)]) == 0
    torch.testing.assert_close(load_gtasr(st).state_dict(), load_gtasr(pth).state_dict(), rtol=0, atol=0)
    Image.fromarray(lowres(2)).save(tmp_path / "in.png")
    for name, weights in (("a.png", pth), ("b.png", st)):
        assert (
            main(
                [
                    "upscale",
                    "--weights",
                    str(weights),
                    "--device",
                    "cpu",
                    str(tmp_path / "in.png"),
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    a, b = (np.array(Image.open(tmp_path / n)).astype(int) for n in ("a.png", "b.png"))
    # Same weights, same seed: equal up to CPU kernels' float rounding (a few pixels land on the other
    # side of an 8-bit step), far below what another seed changes.
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3


def test_folder_mode_with_rgba_and_tiling(files: tuple, tmp_path: Path) -> None:
    pth, _, net = files
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb, rgba = lowres(3, 24, 32), lowres(4, 24, 32, channels=4)
    Image.fromarray(rgb).save(src / "one.png")
    Image.fromarray(rgba, "RGBA").save(src / "two.png")
    (src / "notes.txt").write_text("not an image")
    assert (
        main(
            [
                "upscale",
                "--weights",
                str(pth),
                "--device",
                "cpu",
                "--tiling",
                "force",
                "--tile",
                "16",
                "--overlap",
                "8",
                "--seed",
                "5",
                str(src),
                str(dst),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in dst.iterdir()) == ["one.png", "two.png"]
    two = np.array(Image.open(dst / "two.png"))
    assert two.shape == (96, 128, 4)
    expected = _expected(net, rgba, 5, tile=16, overlap=8)
    assert np.abs(two.astype(int) - expected).max() <= 1
    one = np.array(Image.open(dst / "one.png"))
    assert np.abs(one.astype(int) - _expected(net, rgb, 5, tile=16, overlap=8)).max() <= 1


@pytest.mark.parametrize("plan", [None, "balanced", "released"])  # None: the default, balanced
def test_tile_plan_reaches_the_core(files: tuple, tmp_path: Path, plan: str | None) -> None:
    """40 x 80 LR in tiles of 24 / 8: the two layouts put the tile columns at different places."""
    pth, _, net = files
    a = lowres(6, 40, 80)
    Image.fromarray(a).save(tmp_path / "in.png")
    args = ["upscale", "--weights", str(pth), "--device", "cpu", "--tiling", "force", "--tile", "24"]
    args += ["--overlap", "8", "--seed", "2", *([] if plan is None else ["--tile-plan", plan])]
    assert main([*args, str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 0
    out = np.array(Image.open(tmp_path / "out.png")).astype(int)
    same = _expected(net, a, 2, tile=24, overlap=8, tile_plan=plan or "balanced")
    other = _expected(
        net, a, 2, tile=24, overlap=8, tile_plan="released" if plan in (None, "balanced") else "balanced"
    )
    assert np.abs(out - same).max() <= 1
    assert np.abs(out - other).max() > 1


def test_missing_input_and_weights_are_clear_errors(
    files: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pth, _, _ = files
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert (
            main(["upscale", "--weights", str(pth), str(tmp_path / "nope.png"), str(tmp_path / "o.png")]) == 1
        )
    assert f"input {tmp_path / 'nope.png'} does not exist" in caplog.text
    Image.fromarray(lowres(5)).save(tmp_path / "in.png")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert (
            main(
                [
                    "upscale",
                    "--weights",
                    str(tmp_path / "none.pth"),
                    str(tmp_path / "in.png"),
                    str(tmp_path / "o.png"),
                ]
            )
            == 1
        )
    assert "none.pth does not exist" in caplog.text
    caplog.clear()
    (tmp_path / "flux.pth").write_bytes(b"\x80\x02not really a pickle")
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert (
            main(
                [
                    "upscale",
                    "--weights",
                    str(tmp_path / "flux.pth"),
                    str(tmp_path / "in.png"),
                    str(tmp_path / "o.png"),
                ]
            )
            == 1
        )
    assert "truncated or corrupt" in caplog.text
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit) as bad:  # argparse: unknown model
        main(["upscale", "--model", "esrgan", str(tmp_path / "in.png"), str(tmp_path / "o.png")])
    assert bad.value.code == 2


def test_first_use_downloads_into_the_user_cache(
    files: tuple, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pth, _, net = files
    home = tmp_path / "home"
    monkeypatch.setenv("SR4K_HOME", str(home))
    hub.put(GTASR_FINAL.repo_id, GTASR_FINAL.filename, pth.read_bytes())
    a = lowres(6)
    Image.fromarray(a).save(tmp_path / "in.png")
    args = ["upscale", "--device", "cpu", "--hf-endpoint", hub.url, str(tmp_path / "in.png")]
    assert main([*args, str(tmp_path / "o1.png")]) == 0
    cached = home / "gtasr" / GTASR_FINAL.filename
    assert cached.read_bytes() == pth.read_bytes()
    assert sorted(p.name for p in (home / "gtasr").iterdir()) == [GTASR_FINAL.filename]
    assert np.abs(np.array(Image.open(tmp_path / "o1.png")).astype(int) - _expected(net, a, 0)).max() <= 1
    hub.files.clear()  # second use: from the cache, no network
    assert main([*args, str(tmp_path / "o2.png")]) == 0
    assert hub.gets.total() == 1


def test_failed_download_is_a_clear_error_and_leaves_nothing(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SR4K_HOME", str(home))
    Image.fromarray(lowres(7)).save(tmp_path / "in.png")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # read at call time, also when huggingface_hub is imported
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main(["upscale", "--device", "cpu", str(tmp_path / "in.png"), str(tmp_path / "o.png")]) == 1
    url = f"{hub.url}/{GTASR_FINAL.repo_id}/resolve/main/{GTASR_FINAL.filename}"
    assert "after 2 attempt(s)" in caplog.text and url in caplog.text
    assert str(home / "gtasr" / GTASR_FINAL.filename) in caplog.text
    left = [p for p in home.rglob("*") if p.is_file() and p.suffix in (".pth", ".incomplete")]
    assert left == [] and not (tmp_path / "o.png").exists()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sr4k"):
        assert main(["upscale", "--no-download", str(tmp_path / "in.png"), str(tmp_path / "o.png")]) == 1
    assert "--no-download is set" in caplog.text and "Download it by hand" in caplog.text


def test_python_dash_m_entry_point() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sr4k.cli", "upscale", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO.parent,
        timeout=120,
    )
    assert res.returncode == 0
    assert "--tiling {auto,off,force}" in res.stdout and "gtasr options" in res.stdout


def test_phone_photo_comes_out_upright_with_its_colour_profile(files: tuple, tmp_path: Path) -> None:
    """A JPEG stored 20 wide x 12 high with EXIF Orientation 6 and an ICC profile (as phones write them): the
    output is upright (48 x 80) and carries the profile, in a folder run and to a JPEG file."""
    pth, _, _ = files
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(lowres(8, 12, 20)).save(src / "phone.jpg", exif=exif, icc_profile=profile)
    Image.fromarray(lowres(9, 12, 20)).save(src / "plain.png")
    base = ["upscale", "--weights", str(pth), "--device", "cpu"]
    assert main([*base, str(src), str(tmp_path / "out")]) == 0
    assert main([*base, str(src / "phone.jpg"), str(tmp_path / "one.jpg")]) == 0
    for out in (tmp_path / "out" / "phone.png", tmp_path / "one.jpg"):
        with Image.open(out) as im:
            assert im.size == (48, 80) and im.info.get("icc_profile") == profile
    with Image.open(tmp_path / "out" / "plain.png") as im:
        assert im.size == (80, 48) and "icc_profile" not in im.info
