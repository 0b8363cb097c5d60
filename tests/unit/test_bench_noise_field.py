"""benchmarks/noise_field.py on the CPU: each stream times a new seed, the counter fields (today's and a git
revision's) have the CPU's bits, and the section names the rows and the ratio."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import noise_field  # benchmarks/ is a script folder, not a package


def test_noise_field_benchmark_smoke() -> None:
    result = noise_field.main(["--smoke", "--no-write", "--baseline-rev", "HEAD"])
    rows = result["rows"]
    assert [(r["device"], r["stream"]) for r in rows][:3] == [
        ("cpu", "torch"),
        ("cpu", "counter"),
        ("cpu", "counter @HEAD"),
    ]
    assert all(r["s"] > 0 for r in rows)
    assert all(r["bits_equal_cpu"] is True for r in rows if r["stream"].startswith("counter"))
    assert "| cpu | counter @HEAD |" in result["text"] and "/ torch" in result["text"]
