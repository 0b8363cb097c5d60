"""The Markdown section benchmarks/cost.py prints and appends to benchmarks/RESULTS.md."""

from __future__ import annotations

import statistics

from common import markdown_table
from cost_plans import Plan

__all__ = ["section"]


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def section(plan: Plan, env: dict[str, str], ceiling: float, rows: list[dict], argv: list[str]) -> str:
    cpu = env["device"].startswith("CPU")  # a loaded CPU: process CPU time says more than wall time
    table = markdown_table(
        [
            "stage",
            "case",
            "size",
            "median s",
            *(["CPU s"] if cpu else []),
            "TFLOP",
            "TFLOP/s",
            "% ceiling",
            "TFLOP/s (2PL)",
            "peak GiB",
        ],
        [
            [
                r["stage"],
                r["case"],
                r["size"],
                f"{r['median_s']:.3f}",
                *([f"{statistics.median(r['cpu_s']):.2f}"] if cpu else []),
                _fmt(r["tflop"], ".4g"),
                _fmt(r["tflops_per_s"], ".4g"),
                _fmt(r["pct_ceiling"], ".0f"),
                _fmt(r.get("tflops_per_s_2PL"), ".4g"),
                f"{r['peak_gib']:.2f}",
            ]
            for r in rows
        ],
    )
    stages = [
        f"- {r['case']}: "
        + ", ".join(f"{k} {v:.3f} s ({r['stage_peak_gib'][k]:.2f} GiB)" for k, v in r["stage_s"].items())
        + f", other {r['other_s']:.3f} s"
        for r in rows
        if "stage_s" in r
    ]
    mem = "process peak RSS (sampled)" if cpu else "torch.cuda.max_memory_allocated"
    return "\n".join(
        [
            f"## Cost at real size, random weights: benchmarks/cost.py, plan `{plan.name}` ({env['date']})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); dtype {plan.dtype}",
            f"- Measured {plan.dtype} matmul ceiling ({plan.matmul_n}³): {ceiling:.4g} TFLOP/s; peak memory: {mem}",
            "- TFLOP: analytical for the transformer (flux_flops), FlopCounterMode for VAE / GTASR; 2PL = "
            "docs/op4ksr.md §10's 2 x params x tokens convention",
            *[f"- {n}" for n in plan.notes],
            f"- Command: `python benchmarks/cost.py {' '.join(argv)}`",
            "",
            table,
            *(["End-to-end stages (median s, peak):", *stages, ""] if stages else []),
        ]
    )
