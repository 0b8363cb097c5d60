"""benchmarks/inspect_artifacts.py on the CPU: each row times the inspector and finds the planted 32-px grid."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import inspect_artifacts  # benchmarks/ is a script folder, not a package


def test_inspect_benchmark_smoke() -> None:
    result = inspect_artifacts.main(["--smoke", "--no-write"])
    (row,) = result["rows"]
    assert row["device"] == "cpu" and row["size"] == "256x256"
    assert row["first_s"] > 0 and row["median_s"] > 0 and row["peak_gib"] > 0
    assert row["periodicity"] > 0.05  # the planted grid is found: the timed work is the real one
    assert "| 256x256 |" in result["text"] and "first s" in result["text"]
