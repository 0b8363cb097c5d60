"""benchmarks/gtasr_tiled_host.py on the CPU: every variant is timed for this version and for a git revision's copy
of the package (imported in a subprocess, not this checkout; from git or from an archive), and the section names
the rows and the ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gtasr_tiled_host  # benchmarks/ is a script folder, not a package


def test_gtasr_tiled_host_benchmark_smoke() -> None:
    result = gtasr_tiled_host.main(["--smoke", "--no-write", "--baseline-rev", "HEAD"])
    versions = result["versions"]
    assert list(versions) == ["this", "@HEAD"]
    for rows in versions.values():
        assert [r["variant"] for r in rows] == list(gtasr_tiled_host.VARIANTS)
        assert all(r["wall_s"] >= r["host_s"] > 0 and r["network_s"] > 0 for r in rows)
    assert "| @HEAD | tiled + preview |" in result["text"] and "extra s" in result["text"]
    # This version's node hands the core's NHWC result to ComfyUI as is, tiled or not.
    assert [r["image_is_the_result"] for r in versions["this"] if "image_is_the_result" in r] == [True, True]


def test_gtasr_tiled_host_benchmark_takes_a_baseline_archive(tmp_path: Path) -> None:
    """Where there is no git (the GPU machine), the baseline comes as a ``git archive`` tarball."""
    tar = tmp_path / "baseline.tar"
    subprocess.run(["git", "-C", str(gtasr_tiled_host.REPO), "archive", "-o", str(tar), "HEAD"], check=True)
    result = gtasr_tiled_host.main(["--smoke", "--no-write", "--baseline-tar", str(tar)])
    assert list(result["versions"]) == ["this", "@baseline"]
    assert "| @baseline | tiled |" in result["text"]
