"""GTASR's window attention takes a fused SDPA kernel: a 3-D [heads, N, N] bias (what WindowAttention passed
before) forces SDPA's math fallback (fp32 scores; the H200 working set of the 4K upscale was that), the 4-D
[1, heads, N, N] bias it passes now does not. Checked with torch's CPU flash kernel, which applies the same mask
shape rule, and by a smoke run of benchmarks/sdpa_backends.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from sr4k.gtasr_core.swin import WindowAttention, shifted_window_mask, window_partition
from sr4k.srkit import perf

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import sdpa_backends  # noqa: E402  (a script folder, not a package)


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("chunk", [0, 3])
def test_window_attention_runs_on_a_fused_kernel(shifted: bool, chunk: int) -> None:
    torch.manual_seed(0)
    attn = WindowAttention(32, 4, 2).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = window_partition(torch.randn(2, 32, 8, 12), 4)  # 12 windows of 16 tokens
    mask = shifted_window_mask(8, 12, 4, 2) if shifted else None
    with torch.no_grad(), perf.options(gtasr_attn_windows=chunk):
        with sdpa_kernel([SDPBackend.MATH]):
            ref = attn(x, mask)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if the mask shape rules the kernel out
            out = attn(x, mask)
    assert (out - ref).abs().max() < 1e-5


def test_script_smoke_shows_the_mask_rule() -> None:
    rows = sdpa_backends.main(["--device", "cpu", "--smoke", "--repeats", "1", "--no-write"])["rows"]
    default = {(r["windows"], r["mask"]): r for r in rows if r["backend"] == "default"}
    assert {r["dispatched"] for (_, form), r in default.items() if form == "3-D"} == {"math"}
    assert {r["dispatched"] for (_, form), r in default.items() if form != "3-D"} == {"flash (cpu)"}
    assert all(r["rel_err"] < 1e-5 for r in rows if r["status"] == "ok")
    refused = [r for r in rows if r["backend"] == "flash" and r["mask"] == "3-D"]
    assert refused and all(r["status"] == "refused" and "mask shapes" in r["reason"] for r in refused)
