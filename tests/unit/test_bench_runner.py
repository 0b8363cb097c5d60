"""``sr4k bench`` end to end on small generated data: folder scoring, and bicubic / GTASR / folder methods run
over a synthetic benchmark (x4 and x16), an LR-only folder, and (slow) OP4KSR on the tiny FLUX."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gtasr_support import TINY, deterministic_init_
from sr4k.cli.bench import main
from sr4k.gtasr_core import build, upscale
from sr4k.srkit.datasets import DatasetError, build_synthetic_benchmark
from sr4k.srkit.image_io import read_image, write_image
from sr4k.srkit.metrics import psnr

SIZE = 192  # HR side: LR 48 at x4 (2x2 tiles of 32 with overlap 8), 12 at x16; >= 160 for periodicity


def smooth(size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(
        torch.rand(1, 3, 8, 8, generator=g), size=(size, size), mode="bicubic", align_corners=False
    )
    return (0.1 + 0.8 * x.clamp(0, 1))[0]


def quantized(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    for i, stem in enumerate(["a", "b"]):
        write_image(root / "hr" / f"{stem}.png", smooth(SIZE, i))
    build_synthetic_benchmark(root / "hr", root / "syn", scales=(4, 16), hr_size=SIZE)
    net = deterministic_init_(build(TINY))
    torch.save({"params_ema": net.state_dict(), "params": net.state_dict()}, root / "gtasr_tiny.pth")
    return root


def test_score_a_folder_against_hr(bench_data: Path, tmp_path: Path) -> None:
    hr_dir = bench_data / "hr"
    for stem in ("a", "b"):
        write_image(tmp_path / "sr" / f"{stem}.png", read_image(hr_dir / f"{stem}.png") + 3 / 255)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "--hr",
                str(hr_dir),
                "--sr",
                str(tmp_path / "sr"),
                "--json",
                str(out),
                "--md",
                str(tmp_path / "r.md"),
                "--metrics",
                "psnr,ssim,seam",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    expected = 10 * math.log10(255**2 / (sum((65.481, 128.553, 24.966)) * 3 / 255) ** 2)  # 8-bit +3 on RGB
    assert result["count"] == 2 and result["metrics"] == ["psnr", "ssim", "seam"]
    for row in result["per_image"].values():
        assert row["psnr"] == pytest.approx(expected, abs=1e-9) and 0.99 < row["ssim"] < 1
    assert result["mean"]["psnr"] == pytest.approx(expected, abs=1e-9)
    assert f"| sr | {expected:.4f} |" in (tmp_path / "r.md").read_text()

    (tmp_path / "sr" / "b.png").unlink()
    write_image(tmp_path / "sr" / "c.png", torch.zeros(3, 8, 8))
    write_image(tmp_path / "sr" / "a.png", torch.zeros(3, SIZE - 1, SIZE))
    with pytest.raises(
        DatasetError,
        match=r"1 HR image\(s\) without an output .*\['b'\]; 1 output\(s\) without an "
        r"HR image: \['c'\]; 1 mis-sized output\(s\): \['a.png 191x192 vs "
        r"expected 192x192'\]",
    ):
        main(["--hr", str(hr_dir), "--sr", str(tmp_path / "sr"), "--json", str(out)])


def test_methods_over_a_synthetic_benchmark(bench_data: Path, tmp_path: Path) -> None:
    syn, ckpt = bench_data / "syn", bench_data / "gtasr_tiny.pth"
    for stem in ("a", "b"):  # another tool's outputs: here plain bicubic, so it must score like `bicubic`
        lr = read_image(syn / "LR_x4" / f"{stem}.png")[None]
        write_image(
            tmp_path / "other" / f"{stem}.png", F.interpolate(lr, size=(SIZE, SIZE), mode="bicubic")[0]
        )
    out = tmp_path / "t.json"
    main(
        [
            "--dataset",
            str(syn),
            "--scale",
            "4",
            "--methods",
            f"bicubic,gtasr,gtasr-tiled,folder:other={tmp_path / 'other'}",
            "--out",
            str(tmp_path / "out"),
            "--json",
            str(out),
            "--md",
            str(tmp_path / "t.md"),
            "--gtasr",
            str(ckpt),
            "--tile",
            "32",
            "--overlap",
            "8",
            "--device",
            "cpu",
        ]
    )
    r = json.loads(out.read_text())
    assert (
        r["dataset"]["scale"] == 4
        and r["dataset"]["count"] == 2
        and list(r["methods"]) == ["bicubic", "gtasr", "gtasr-tiled", "other"]
    )
    assert r["methods"]["other"]["mean"] == r["methods"]["bicubic"]["mean"]
    assert (
        r["methods"]["other"]["seconds_per_image"] is None and r["methods"]["gtasr"]["seconds_per_image"] > 0
    )
    net = deterministic_init_(build(TINY))
    lr = read_image(syn / "LR_x4" / "a.png")[None]
    hr = read_image(syn / "HR" / "a.png")[None]
    for method, tile in (("gtasr", None), ("gtasr-tiled", 32)):
        ours = read_image(tmp_path / "out" / method / "a.png")[None]
        assert torch.equal(ours, quantized(upscale(net, lr, seed=0, tile=tile, overlap=8)))
        assert r["methods"][method]["per_image"]["a"]["psnr"] == pytest.approx(
            float(psnr(ours, hr, quantize=True)[0]), abs=1e-9
        )
    assert set(r["methods"]["gtasr"]["per_image"]["b"]) == {"psnr", "ssim", "seam", "periodicity"}
    table = (tmp_path / "t.md").read_text()
    assert "| method | psnr ↑ | ssim ↑ | seam ↓ | periodicity ↓ | s/img |" in table and "| other |" in table

    # x16: GTASR (x4) runs twice, 12 -> 48 -> 192
    main(
        [
            "--dataset",
            str(syn),
            "--scale",
            "16",
            "--methods",
            "gtasr",
            "--out",
            str(tmp_path / "o16"),
            "--json",
            str(tmp_path / "x16.json"),
            "--gtasr",
            str(ckpt),
            "--metrics",
            "psnr",
            "--limit",
            "1",
        ]
    )
    lr16 = read_image(syn / "LR_x16" / "a.png")[None]
    twice = upscale(net, upscale(net, lr16, seed=0), seed=0)
    assert torch.equal(read_image(tmp_path / "o16" / "gtasr" / "a.png")[None], quantized(twice))
    assert json.loads((tmp_path / "x16.json").read_text())["dataset"]["count"] == 1


def test_lr_only_folder_gets_no_reference_metrics(bench_data: Path, tmp_path: Path) -> None:
    shutil.copytree(bench_data / "syn" / "LR_x4", tmp_path / "real")
    main(
        [
            "--dataset",
            str(tmp_path / "real"),
            "--methods",
            "bicubic",
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(tmp_path / "r.json"),
            "--scale",
            "4",
        ]
    )
    r = json.loads((tmp_path / "r.json").read_text())
    assert not r["dataset"]["has_hr"] and read_image(tmp_path / "o" / "bicubic" / "a.png").shape == (
        3,
        SIZE,
        SIZE,
    )
    assert set(r["methods"]["bicubic"]["mean"]) == {"seam", "periodicity"}


def test_bad_command_lines_explain_themselves(bench_data: Path, tmp_path: Path) -> None:
    j = str(tmp_path / "x.json")
    with pytest.raises(SystemExit, match="--hr and --sr go together"):
        main(["--hr", str(bench_data / "hr"), "--json", j])
    with pytest.raises(SystemExit, match="either --hr DIR --sr DIR, or --dataset"):
        main(["--json", j])
    with pytest.raises(ValueError, match="need --gtasr FILE"):
        main(
            ["--dataset", str(bench_data / "syn"), "--methods", "gtasr", "--out", str(tmp_path), "--json", j]
        )
    with pytest.raises(ValueError, match="need --flux FILE"):
        main(
            ["--dataset", str(bench_data / "syn"), "--methods", "op4ksr", "--out", str(tmp_path), "--json", j]
        )
    with pytest.raises(ValueError, match=r"unknown method 'esrgan'.*folder:NAME=DIR"):
        main(
            ["--dataset", str(bench_data / "syn"), "--methods", "esrgan", "--out", str(tmp_path), "--json", j]
        )
    with pytest.raises(ValueError, match="write folder:NAME=DIR"):
        main(
            [
                "--dataset",
                str(bench_data / "syn"),
                "--methods",
                "folder:x",
                "--out",
                str(tmp_path),
                "--json",
                j,
            ]
        )


def test_the_sr4k_command_has_bench(
    bench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sr4k.cli.main import main as sr4k

    hr = str(bench_data / "hr")
    assert (
        sr4k(["bench", "--hr", hr, "--sr", hr, "--json", str(tmp_path / "a.json"), "--metrics", "ssim"]) == 0
    )
    assert json.loads((tmp_path / "a.json").read_text())["mean"]["ssim"] == pytest.approx(1.0, abs=1e-12)
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # as without the extra
    assert (
        sr4k(["bench", "--hr", hr, "--sr", hr, "--json", str(tmp_path / "b.json"), "--metrics", "psnr,lpips"])
        == 1
    )
    assert "pip install sr4k[metrics]" in caplog.text and not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_op4ksr_with_and_without_rfr_on_the_tiny_flux(tmp_path: Path) -> None:
    from sr4k.op4ksr_core.flux.forward import set_rfr
    from sr4k.op4ksr_core.flux.loader import load_flux_transformer
    from sr4k.op4ksr_core.headless import upscale_image
    from sr4k.op4ksr_core.rfr import RFR_PRESETS
    from sr4k.op4ksr_core.vae.loader import load_f16_vae
    from tiny_models import f16_vae_file, load, tiny_flux_bfl_file

    write_image(tmp_path / "hr" / "a.png", smooth(192, 0))
    build_synthetic_benchmark(tmp_path / "hr", tmp_path / "syn", scales=(4,), hr_size=192)
    flux, vae = tiny_flux_bfl_file(), f16_vae_file("bfl")
    main(
        [
            "--dataset",
            str(tmp_path / "syn"),
            "--methods",
            "op4ksr,op4ksr-norfr",
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(tmp_path / "r.json"),
            "--flux",
            str(flux),
            "--vae",
            str(vae),
            "--metrics",
            "psnr,seam",
            "--rfr",
            "scale_2x",
        ]
    )  # (NTK RFR is the identity on grids smaller than FLUX's 64x64 tokens)
    transformer = load_flux_transformer(load(flux))
    vae_model = load_f16_vae(load(vae), "aligned", dtype=torch.float32)  # the bench default
    lr = read_image(tmp_path / "syn" / "LR_x4" / "a.png")[None]
    outs = {}
    for method, preset in (("op4ksr", "scale_2x"), ("op4ksr-norfr", "none")):
        ref = upscale_image(set_rfr(transformer, RFR_PRESETS[preset]), vae_model, lr, long_side=192)
        outs[method] = read_image(tmp_path / "o" / method / "a.png")[None]
        assert (outs[method] - quantized(ref)).abs().max() <= 1 / 255 + 1e-6
    assert not torch.equal(outs["op4ksr"], outs["op4ksr-norfr"])  # RFR changes the result
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["methods"]["op4ksr"]["mean"]) == {"psnr", "seam"}
