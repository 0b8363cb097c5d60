"""Benchmark datasets: seeded synthetic builder, DIV4K-50 / LR-only / auto-detected loaders, image I/O."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sr4k.srkit.datasets import (
    DatasetError,
    build_synthetic_benchmark,
    image_seed,
    list_images,
    load_dataset,
    load_div4k50,
    load_lr_folder,
    load_synthetic_benchmark,
)
from sr4k.srkit.degradations import PRESETS
from sr4k.srkit.download import sha256_file
from sr4k.srkit.image_io import read_image, write_image


def smooth_image(seed: int, size: int, base: int = 8) -> torch.Tensor:
    """A natural-ish test image [3, size, size]: bicubic-upsampled random colours, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, base, base, generator=g)
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[0]


def make_folder(folder: Path, stems: list[str], size: int, seed0: int = 0) -> None:
    for i, stem in enumerate(stems):
        write_image(folder / f"{stem}.png", smooth_image(seed0 + i, size))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    make_folder(root / "hr", ["a", "b"], 64)
    build_synthetic_benchmark(root / "hr", root / "bench", scales=(4, 16), seed=0, hr_size=64)
    return root / "hr", root / "bench"


def test_synthetic_benchmark_manifest_hashes_sizes_and_parameters(built: tuple[Path, Path]) -> None:
    hr_dir, bench = built
    m = json.loads((bench / "manifest.json").read_text())
    assert m["scales"] == [4, 16] and m["seed"] == 0 and m["preset"] == "gtasr"
    assert m["degradation"]["x16"]["scale"] == 16 and m["degradation"]["x4"]["scale"] == 4
    assert m["degradation"]["x4"]["second_order_prob"] == PRESETS["gtasr"].second_order_prob
    assert [i["stem"] for i in m["images"]] == ["a", "b"]
    seeds = set()
    for item in m["images"]:
        assert sha256_file(bench / item["hr"]) == item["hr_sha256"]
        assert sha256_file(hr_dir / item["source"]) == item["source_sha256"]
        # HR is the source, losslessly re-encoded
        assert torch.equal(read_image(bench / item["hr"]), read_image(hr_dir / item["source"]))
        for s in (4, 16):
            e = item["lr"][f"x{s}"]
            assert sha256_file(bench / e["path"]) == e["sha256"]
            assert read_image(bench / e["path"]).shape == (3, 64 // s, 64 // s) and e["size"] == [64 // s] * 2
            assert e["seed"] == image_seed(0, item["stem"], s)
            seeds.add(e["seed"])
    assert len(seeds) == 4  # one generator per image and scale
    lr = read_image(bench / "LR_x4/a.png")
    hr_down = F.interpolate(read_image(hr_dir / "a.png")[None], size=(16, 16), mode="area")[0]
    assert 0.002 < (lr - hr_down).abs().mean() < 0.3  # degraded, but still the same picture
    for s in (4, 16):
        d = load_synthetic_benchmark(bench, s)
        assert d.scale == s and d.has_hr and [p.stem for p in d.pairs] == ["a", "b"]
        assert d.pairs[0].lr == bench / f"LR_x{s}" / "a.png"


def test_synthetic_benchmark_is_deterministic_per_image(built: tuple[Path, Path], tmp_path: Path) -> None:
    hr_dir, bench = built
    (tmp_path / "one").mkdir()
    shutil.copy(hr_dir / "b.png", tmp_path / "one" / "b.png")  # another folder: b alone
    again = json.loads(build_synthetic_benchmark(tmp_path / "one", tmp_path / "o1", hr_size=64).read_text())
    first = {i["stem"]: i for i in json.loads((bench / "manifest.json").read_text())["images"]}
    assert again["images"][0]["lr"] == first["b"]["lr"]  # byte-identical files, other images irrelevant
    other = json.loads(
        build_synthetic_benchmark(
            tmp_path / "one", tmp_path / "o2", seed=1, hr_size=64, scales=(4,)
        ).read_text()
    )
    assert other["images"][0]["lr"]["x4"]["sha256"] != first["b"]["lr"]["x4"]["sha256"]


def test_synthetic_benchmark_errors(built: tuple[Path, Path], tmp_path: Path) -> None:
    hr_dir, bench = built
    copy = tmp_path / "copy"
    shutil.copytree(bench, copy)
    write_image(copy / "LR_x4" / "a.png", torch.zeros(3, 16, 16))
    (copy / "LR_x16" / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"LR_x4/a.png sha256 differs.*|LR_x16/b.png missing"):
        load_synthetic_benchmark(copy, 4)
    with pytest.raises(DatasetError, match="LR_x16/b.png missing"):
        load_synthetic_benchmark(copy, 16, verify=False)
    with pytest.raises(DatasetError, match="not 8"):
        load_synthetic_benchmark(bench, 8)
    with pytest.raises(DatasetError, match="overwrite=True"):
        build_synthetic_benchmark(hr_dir, bench, hr_size=64)
    make_folder(tmp_path / "odd", ["x"], 40)
    with pytest.raises(DatasetError, match=r"x.png: 40x40 != 64x64"):
        build_synthetic_benchmark(tmp_path / "odd", tmp_path / "o", hr_size=64)
    with pytest.raises(DatasetError, match=r"x.png: 40x40 not divisible by every scale \(4, 16\)"):
        build_synthetic_benchmark(tmp_path / "odd", tmp_path / "o", hr_size=None)
    with pytest.raises(DatasetError, match="does not exist"):
        build_synthetic_benchmark(tmp_path / "nowhere", tmp_path / "o")
    with pytest.raises(ValueError, match="scales"):
        build_synthetic_benchmark(hr_dir, tmp_path / "o", scales=(1,), hr_size=64)


def _div4k(root: Path, n: int = 3, lr: int = 4, hr: int = 64) -> None:
    make_folder(root / "HQ", [f"{i:04d}" for i in range(n)], hr)
    make_folder(root / "LQ", [f"{i:04d}" for i in range(n)], lr)


def test_div4k50_loader_and_its_errors(tmp_path: Path) -> None:
    _div4k(tmp_path / "ok")
    d = load_div4k50(tmp_path / "ok", lr_size=4, hr_size=64, count=3)
    assert d.scale == 16 and len(d) == 3 and d.pairs[1].hr == tmp_path / "ok" / "HQ" / "0001.png"
    with pytest.raises(DatasetError, match="has 3 pairs, expected 50"):
        load_div4k50(tmp_path / "ok", lr_size=4, hr_size=64)
    with pytest.raises(DatasetError, match=r"0000: LR 4x4 != 256x256; HR 64x64 != 4096x4096"):
        load_div4k50(tmp_path / "ok", count=None)
    (tmp_path / "ok" / "LQ" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"1 without LQ \['0002.png'\]"):
        load_div4k50(tmp_path / "ok", lr_size=4, hr_size=64, count=None)
    _div4k(tmp_path / "skew")
    write_image(tmp_path / "skew" / "LQ" / "0001.png", torch.zeros(3, 4, 5))
    with pytest.raises(
        DatasetError, match=r"1 mis-sized pair\(s\): 0001: LR 4x5 != 4x4; HR 64x64 != x16 of LR 4x5"
    ):
        load_div4k50(tmp_path / "skew", lr_size=4, hr_size=64, count=None)
    make_folder(tmp_path / "nolq" / "HQ", ["0000"], 64)
    with pytest.raises(DatasetError, match=r"no LQ \(256x256 input\) folder \(expected one of LQ, LR\)"):
        load_div4k50(tmp_path / "nolq")


def test_folder_listing_lr_only_and_autodetect(built: tuple[Path, Path], tmp_path: Path) -> None:
    make_folder(tmp_path / "real", ["p", "q"], 12)
    d = load_lr_folder(tmp_path / "real")
    assert not d.has_hr and d.scale is None and [p.stem for p in d.pairs] == ["p", "q"]
    Image.new("RGB", (2, 2)).save(tmp_path / "real" / "p.jpg")
    with pytest.raises(DatasetError, match=r"share a stem.*'p.jpg', 'p.png'"):
        list_images(tmp_path / "real")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        list_images(tmp_path / "empty")
    assert load_dataset(built[1], 16).scale == 16  # manifest -> synthetic
    _div4k(tmp_path / "paired", lr=4, hr=16)
    paired = load_dataset(tmp_path / "paired")
    assert paired.scale == 4 and paired.has_hr
    with pytest.raises(DatasetError, match="ratio is 4, but scale 16"):
        load_dataset(tmp_path / "paired", 16)
    make_folder(tmp_path / "lronly" / "LR", ["z"], 8)
    lr_only = load_dataset(tmp_path / "lronly", 4)
    assert not lr_only.has_hr and lr_only.scale == 4 and lr_only.name == "lronly"
