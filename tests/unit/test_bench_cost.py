"""benchmarks/cost.py and op4ksr_4k.py: the analytical FLUX FLOP count against torch's FLOP counter and the
anchors of docs/op4ksr.md §10, and a CPU smoke run of both scripts (reduced sizes) writing JSON and RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import cost  # noqa: E402  (a script folder, not a package)
import flops  # noqa: E402


@pytest.mark.parametrize(
    ("layers", "single", "n_img", "n_txt"), [(1, 1, 64, 32), (2, 1, 256, 512), (1, 2, 16, 1)]
)
def test_flux_flops_equal_torchs_flop_counter(layers: int, single: int, n_img: int, n_txt: int) -> None:
    from diffusers import FluxTransformer2DModel

    cfg = {**flops.FLUX_DEV, "num_layers": layers, "num_single_layers": single, "num_attention_heads": 4}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**cfg)
        inputs = cost.flux_inputs(cfg, n_img, n_txt, torch.device("meta"), torch.float32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**inputs)
    assert flops.flux_flops(cfg, n_img, n_txt)["exact"] == counter.get_total_flops()


def test_flux_dev_counts_reproduce_the_op4ksr_doc_anchors() -> None:
    """docs/op4ksr.md §10 lists TFLOP per forward under the 2 x params x tokens convention; ours must match them."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        params = sum(p.numel() for p in FluxTransformer2DModel(**flops.FLUX_DEV).parameters())
    assert params == 11_901_408_320  # "11.901 B parameters"
    for px, down, txt, doc in [
        (4096, 16, 512, 602.0),
        (2048, 16, 512, 124.5),
        (4096, 8, 512, 4627.2),
        (4096, 16, 128, 583.9),
    ]:
        n = flops.image_tokens(px, down)
        assert flops.flux_flops_2pl(params, n, txt, flops.FLUX_DEV) / 1e12 == pytest.approx(doc, abs=0.6)
    exact = flops.flux_flops(flops.FLUX_DEV, 16_384, 512)
    assert exact["exact"] / 1e12 == pytest.approx(418.1, abs=0.1)  # per-sample weights charged once
    assert exact["attention"] == 57 * 4 * 16_896**2 * 3072  # QK^T + AV over the joint sequence, 57 blocks
    with pytest.raises(ValueError, match="not a multiple of 32"):
        flops.image_tokens(1000, 16)


def test_gtasr_meta_flops_match_the_gtasr_doc() -> None:
    """docs/gtasr.md §2.4 (FlopCounterMode, released config): ~306 GFLOPs at 64 -> 256, ~1226 at 128 -> 512."""
    from perf_pins import NCHW_UNFUSED
    from sr4k.gtasr_core import RELEASED
    from sr4k.srkit import perf

    with perf.options(NCHW_UNFUSED):  # the released graph (the fused upsample conv does fewer FLOPs)
        assert flops.gtasr_flops(RELEASED, 64) / 1e9 == pytest.approx(306, abs=1)
        assert flops.gtasr_flops(RELEASED, 128) / 1e9 == pytest.approx(1226, abs=2)


def _run(script: str, tmp_path: Path, *extra: str) -> dict:
    out, md = tmp_path / f"{script}.json", tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n## Another helper's section\n\nkeep me\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / f"{script}.py"),
            "--smoke",
            "--device",
            "cpu",
            "--json",
            str(out),
            "--results",
            str(md),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert text.startswith("# Benchmark results\n\n## Another helper's section\n\nkeep me\n")  # appended only
    assert f"benchmarks/{script}.py" in text and "torch " + torch.__version__ in text
    return json.loads(out.read_text())


def test_cost_smoke_run_measures_every_stage(tmp_path: Path) -> None:
    r = _run("cost", tmp_path)
    stages = [row["stage"] for row in r["rows"]]
    assert stages == [
        "transformer",
        "transformer",
        "vae encode",
        "vae decode",
        "op4ksr end to end",
        "gtasr forward",
        "gtasr upscale",
    ]
    assert r["ceiling_tflops"] > 0 and all(row["median_s"] > 0 and row["peak_gib"] > 0 for row in r["rows"])
    f16 = r["rows"][0]
    assert f16["tflop"] * 1e12 == flops.flux_flops(cost.SMOKE.flux, 64, 32)["exact"]
    e2e = r["rows"][4]
    assert set(e2e["stage_s"]) == {"vae encode", "transformer", "vae decode"}
    assert 0 < sum(e2e["stage_s"].values()) <= e2e["median_s"]
    assert r["rows"][6]["tiles"] == 4


def test_op4ksr_4k_smoke_run_times_each_stage(tmp_path: Path) -> None:
    r = _run("op4ksr_4k", tmp_path, "--out-px", "128", "--repeats", "1")
    assert (r["lr_px"], r["out_px"], r["tokens"], r["text_tokens"]) == (32, 128, 16, 1)
    assert set(r["stage_s"]) == {"vae encode", "transformer", "vae decode"}
    assert all(v > 0 for v in r["stage_s"].values()) and r["other_s"] >= -1e-3
    assert r["transformer_tflop"] * 1e12 == flops.flux_flops(cost.SMOKE.flux, 16, 1)["exact"]
    assert r["peak_gib"] >= max(r["stage_peak_gib"].values()) - 0.05
