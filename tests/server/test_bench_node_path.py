"""benchmarks/node_path.py on the CPU: ComfyUI in-process loads the pack as a custom node, and the nodes compute what
the headless path computes (same weights, fp32), with the model kept loaded between calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from comfy_tree import comfy_dir, import_comfy

pytestmark = pytest.mark.comfy
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_node_path_smoke_run_matches_headless_and_keeps_models_loaded(tmp_path: Path) -> None:
    import_comfy()  # skips (locally) or fails (CI) when the ComfyUI tree is missing
    out, md = tmp_path / "node.json", tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n## Earlier section\n\nkeep me\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "node_path.py"),
            "--smoke",
            "--device",
            "cpu",
            "--comfy-dir",
            str(comfy_dir()),
            "--json",
            str(out),
            "--results",
            str(md),
            "--compile",
            "aot_eager",  # the compiled paths' plumbing (headless regional, core TorchCompileModel), fast on CPU
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["part"], r["path"]) for r in rows] == [
        ("op4ksr", "headless"),
        ("op4ksr", "headless, compiled"),
        ("op4ksr", "node"),
        ("op4ksr", "node, compiled"),
        ("gtasr", "headless"),
        ("gtasr", "node"),
        ("gtasr", "node, new seed"),
        ("gtasr", "node, new seed, torch noise"),
        ("gtasr", "node, long side 240 (x4 pass + resize)"),
    ]
    for r in rows:
        assert r["median_s"] > 0 and r["peak_gib"] > 0
    op_head, op_head_c, op_node, op_node_c, gt_head, gt_node, *gt_new_seed, gt_resized = rows
    assert set(op_head["stages_s"]) == set(op_node["stages_s"]) == {"encode", "transformer", "decode"}
    assert all(v > 0 for v in op_node["stages_s"].values())  # the hooks saw ComfyUI's FLUX and our VAE run
    # fp32 on the CPU: ComfyUI's FLUX + sampler + our VAE wrapper reproduce the headless output.
    assert op_node["rel_err"] < 1e-4, op_node["rel_err"]
    assert gt_node["rel_err"] < 1e-5, gt_node["rel_err"]
    # a new seed each run (ComfyUI's randomize) is timed against headless; its noise, so its output, differs
    assert all(r["versus"] == "headless" and r["rel_err"] is None for r in gt_new_seed)
    assert (
        gt_resized["versus"] == "node" and gt_resized["rel_err"] is None
    )  # a smaller image: no error to take
    # compiled: the same outputs, and Dynamo really captured graphs (core's wrapper composes with our RFR patch)
    assert op_head_c["rel_err"] < 1e-5 and op_node_c["rel_err"] < 1e-4
    assert result["extra"]["dynamo_unique_graphs"] > 0
    assert (op_node["versus"], op_node_c["versus"]) == ("headless", "headless, compiled")
    for node in (op_node, op_node_c, gt_node):
        assert node["unloads"] == 0 and node["loaded_after"] is True
    # the unload counter works: it saw each model go when the benchmark unloaded everything at the end
    assert result["extra"]["op4ksr_unload_watch_sees_unload_all"] is True
    assert result["extra"]["gtasr_unload_watch_sees_unload_all"] is True
    text = md.read_text()
    assert text.startswith("# Benchmark results\n\n## Earlier section\n\nkeep me\n")  # appended only
    assert "benchmarks/node_path.py" in text and "torch " + torch.__version__ in text
    assert "pack loaded by `nodes.load_custom_node`" in text
