"""``sr4k bench`` keeps going when one metric cannot apply: null with the reason, the other metrics computed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sr4k.cli.bench import main
from sr4k.cli.bench_score import Scorer
from sr4k.srkit.image_io import read_image, write_image

OFFSET = 3 / 255  # SR = HR + 3 levels on R, G, B: PSNR in closed form
PSNR_EXPECTED = 10 * math.log10(255**2 / (sum((65.481, 128.553, 24.966)) * 3 / 255) ** 2)


def smooth(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(h, w), mode="bicubic", align_corners=False)
    return (0.1 + 0.8 * x.clamp(0, 1))[0]


def make_pair(root: Path, stem: str, h: int, w: int, seed: int) -> None:
    write_image(root / "hr" / f"{stem}.png", smooth(h, w, seed))
    write_image(root / "sr" / f"{stem}.png", read_image(root / "hr" / f"{stem}.png") + OFFSET)


def run(root: Path) -> tuple[dict, str]:
    out, md = root / "scores.json", root / "scores.md"
    assert (
        main(
            [
                "--hr",
                str(root / "hr"),
                "--sr",
                str(root / "sr"),
                "--json",
                str(out),
                "--md",
                str(md),
                "--metrics",
                "psnr,ssim,seam,periodicity",
            ]
        )
        == 0
    )
    text = out.read_text()
    assert "NaN" not in text  # strict JSON: a metric that cannot apply is null
    return json.loads(text), md.read_text()


def test_small_images_get_null_periodicity_with_the_reason(tmp_path: Path) -> None:
    make_pair(tmp_path, "small", 96, 128, seed=0)  # periodicity needs >= 160 px (lags up to 80 px)
    result, md = run(tmp_path)
    row, reasons = result["per_image"]["small"], result["not_applicable"]["small"]
    assert row["periodicity"] is None and set(reasons) == {"periodicity"}
    assert "96x128 too small for lags up to 80 px" in reasons["periodicity"]
    assert row["psnr"] == pytest.approx(PSNR_EXPECTED, abs=1e-9)  # the other metrics still computed
    assert 0.99 < row["ssim"] < 1 and math.isfinite(row["seam"])
    assert result["mean"]["periodicity"] is None and result["mean"]["psnr"] == pytest.approx(PSNR_EXPECTED)
    assert "| sr | " in md and "| n/a |" in md
    assert "- sr: periodicity not computed on 1 of 1 image(s)" in md and "96x128 too small" in md


def test_mean_uses_the_images_where_a_metric_applies(tmp_path: Path) -> None:
    make_pair(tmp_path, "big", 192, 192, seed=1)
    make_pair(tmp_path, "small", 96, 128, seed=2)
    result, md = run(tmp_path)
    assert result["per_image"]["big"]["periodicity"] is not None and "big" not in result["not_applicable"]
    assert result["mean"]["periodicity"] == pytest.approx(result["per_image"]["big"]["periodicity"])
    assert "periodicity not computed on 1 of 2 image(s)" in md and "| n/a |" not in md


def test_scorer_reports_reasons_for_each_metric_that_cannot_apply() -> None:
    tiny = smooth(8, 10, seed=3)  # below SSIM's 11x11 window and the seam/periodicity minimum sizes
    values, reasons = Scorer(("psnr", "ssim", "seam", "periodicity")).evaluate(tiny + OFFSET, tiny)
    assert math.isfinite(values["psnr"])  # type: ignore[arg-type]
    assert values["ssim"] is values["seam"] is values["periodicity"] is None
    assert "SSIM needs images of at least 11x11 px" in reasons["ssim"]
    assert "two tiles per axis" in reasons["seam"]
    assert set(reasons) == {"ssim", "seam", "periodicity"}
