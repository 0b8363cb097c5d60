"""Metric glue of ``sr4k bench``: closed-form PSNR, seam / periodicity detection, the pyiqa extra and tables."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from sr4k.cli.bench_score import Scorer, markdown_table, parse_metrics, summarize
from sr4k.srkit.iqa import INSTALL_HINT, IQA_METRICS, IQAScorer, MissingMetricsExtra, require_pyiqa


def smooth(size: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(
        torch.rand(1, 3, 8, 8, generator=g), size=(size, size), mode="bicubic", align_corners=False
    )
    return (0.1 + 0.8 * x.clamp(0, 1))[0]


def test_psnr_ssim_match_the_closed_form() -> None:
    hr = smooth()
    sr = hr + 2 / 255  # every pixel of every channel off by 2 levels (no clipping: hr in [0.1, 0.9])
    scores = Scorer(("psnr", "ssim")).score(sr, hr)
    dy = sum((65.481, 128.553, 24.966)) * 2 / 255  # Y offset on the 0..255 scale
    assert scores["psnr"] == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-6)  # float32 images
    assert 0.99 < scores["ssim"] < 1.0  # a constant offset only moves the luminance term
    assert Scorer(("ssim",)).score(hr, hr)["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_seam_and_periodicity_detect_their_artifacts() -> None:
    clean = smooth()
    blocks = torch.arange(256) // 64 % 2  # 64-px tiles with alternating brightness: visible seams
    seamed = (clean + 0.06 * (blocks[None, :, None] ^ blocks[None, None, :]).float()).clamp(0, 1)
    grid = (torch.arange(256) % 32 == 0).float()  # a line every 32 px: the F16 token-grid artifact
    periodic = (clean + 0.15 * torch.maximum(grid[None, :, None], grid[None, None, :])).clamp(0, 1)
    s = Scorer(("seam", "periodicity"))
    a, b, c = s.score(clean, None), s.score(seamed, None), s.score(periodic, None)
    assert a["seam"] < 1.3 < 2.0 < b["seam"]
    assert a["periodicity"] < 0.01 and c["periodicity"] > 0.05


def test_metric_names_directions_and_tables() -> None:
    assert parse_metrics(None) == ("psnr", "ssim", "seam", "periodicity")
    assert parse_metrics(" PSNR, lpips,psnr") == ("psnr", "lpips")
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['fid'\]"):
        parse_metrics("psnr,fid")
    assert Scorer(("psnr", "seam")).applicable(has_hr=False) == ("seam",)
    means = summarize({"a": {"psnr": 30.0, "seam": 1.0}, "b": {"psnr": float("inf"), "seam": 2.0}})
    assert means == {"psnr": 30.0, "seam": 1.5}  # +inf PSNR (identical images) is left out of the mean
    table = markdown_table({"x": means}, ("psnr", "seam", "niqe"), {"x": {"s/img": "0.50"}})
    assert table.splitlines() == [
        "| method | psnr ↑ | seam ↓ | niqe ↓ | s/img |",
        "|---|---|---|---|---|",
        "| x | 30.0000 | 1.5000 | - | 0.50 |",
    ]


def test_learned_metrics_without_pyiqa_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import pyiqa -> ImportError, installed or not
    with pytest.raises(MissingMetricsExtra, match=r"pip install sr4k\[metrics\]") as err:
        require_pyiqa()
    assert INSTALL_HINT in str(err.value) and "lpips" in str(err.value)
    with pytest.raises(MissingMetricsExtra, match=r"pip install sr4k\[metrics\]"):
        Scorer(("psnr", "musiq"))
    Scorer(("psnr", "seam"))  # built-in metrics do not need it


def _stand_in_pyiqa(calls: list[str]) -> types.ModuleType:
    """A module with pyiqa's ``create_metric`` API computing simple closed-form scores (routes are checked)."""

    def create_metric(name: str, device: torch.device, as_loss: bool) -> object:
        calls.append(name)
        assert not as_loss and isinstance(device, torch.device)
        if IQA_METRICS[name].full_reference:
            return lambda x, y: (x - y).abs().mean(dim=(1, 2, 3))
        return lambda x: x.mean(dim=(1, 2, 3))

    module = types.ModuleType("pyiqa")
    module.create_metric = create_metric  # type: ignore[attr-defined]
    return module


def test_iqa_scorer_routes_full_and_no_reference_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pyiqa", _stand_in_pyiqa(calls))
    hr = smooth(64)
    sr = (hr + 0.1).clamp(0, 1)
    iqa = IQAScorer(["lpips", "niqe"])
    out = iqa.score(sr, hr)
    assert out["lpips"].item() == pytest.approx(float((sr - hr).abs().mean()), rel=1e-6)
    assert out["niqe"].item() == pytest.approx(float(sr.mean()), rel=1e-6)
    assert set(iqa.score(sr, None)) == {"niqe"}  # no ground truth: full-reference metrics are skipped
    assert calls == ["lpips", "niqe"]  # each network built once
    scores = Scorer(("psnr", "lpips", "niqe")).score(sr, hr)
    assert list(scores) == ["psnr", "lpips", "niqe"]
    with pytest.raises(ValueError, match="unknown learned metric 'fid'"):
        IQAScorer(["fid"])
    with pytest.raises(ValueError, match="differ in shape"):
        iqa.score(sr, hr[:, :32])
