"""Which ``scaled_dot_product_attention`` backends take GTASR's Swin window attention, and how fast (issue #11).

The meta-device memory count (benchmarks/peak_memory.py) reproduces the H200's GTASR working sets only if the
level-0 window attention ran on SDPA's math fallback (q, k, v upcast to fp32, fp32 scores), not on a fused
kernel. This script runs the attention exactly as ``gtasr_core.swin.WindowAttention`` calls it (released
network: 6 heads of 32, 8x8 windows = 64 tokens, an additive relative-position bias, plus the shift mask in
shifted blocks) for the level-0 window count at LR 1024 (16,384) and one chunk of ``perf.gtasr_attn_windows``,
under each backend alone and under the default choice, and reports which backend the default picked (the aten
op it dispatched to), the time, the memory the call took and, where a backend refuses, torch's reason.

Mask forms: ``3-D`` [heads, N, N] (what the code passed before this version), ``4-D`` [1, heads, N, N] (now),
``per window`` [W, heads, N, N] (shifted blocks: bias + the window's shift mask).

    python benchmarks/sdpa_backends.py --json OUT/sdpa.json --results OUT/RESULTS_sdpa.md   # H200: < 30 s
    python benchmarks/sdpa_backends.py --device cpu --smoke --no-write                      # tests
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from common import add_output_arguments, environment, markdown_table, publish, sync
from roofline import commit
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from sr4k.gtasr_core.config import RELEASED
from sr4k.gtasr_core.swin import shifted_window_mask

BACKENDS: dict[str, SDPBackend | None] = {
    "default": None,
    "math": SDPBackend.MATH,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
# aten ops the SDPA dispatcher calls, by backend (the math path shows up as its decomposition)
_FUSED_OPS = {
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_scaled_dot_product_cudnn_attention": "cudnn",
}


class _OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def chosen_backend(fn: Callable[[], Any]) -> str:
    """The backend SDPA dispatched ``fn``'s attention to, read from the aten ops it ran."""
    with _OpNames() as rec:
        fn()
    fused = [_FUSED_OPS[n] for n in rec.names if n in _FUSED_OPS]
    return (
        fused[0]
        if fused
        else ("math" if any(n in ("bmm", "baddbmm", "_softmax") for n in rec.names) else "?")
    )


def inputs(
    windows: int,
    mask_form: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    heads: int,
    window: int,
    dim: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v [W, heads, N, d] and the additive mask in ``mask_form``, as WindowAttention builds them."""
    n = window * window
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (
        torch.randn(windows, heads, n, dim // heads, device=device, dtype=dtype, generator=g)
        for _ in range(3)
    )
    bias = (torch.randn(heads, n, n, device=device, generator=g) * 0.02).to(dtype)
    if mask_form == "3-D":
        return q, k, v, bias
    if mask_form == "4-D":
        return q, k, v, bias[None]
    # a square map of at least that many windows (2048 is no square: 46² windows, the first 2048 used)
    side = window * math.ceil(windows**0.5)
    mask = shifted_window_mask(side, side, window, window // 2, device=device)
    idx = torch.arange(windows, device=device) % mask.shape[0]
    return q, k, v, bias[None] + mask[idx][:, None].to(dtype)


def run_case(
    windows: int, mask_form: str, device: torch.device, dtype: torch.dtype, repeats: int
) -> list[dict[str, Any]]:
    cfg = RELEASED
    q, k, v, m = inputs(
        windows,
        mask_form,
        device,
        dtype,
        heads=cfg.swin_num_heads,
        window=cfg.swin_window,
        dim=cfg.swin_embed_dim,
    )
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=m.double())
    rows = []
    for name, backend in BACKENDS.items():
        row: dict[str, Any] = {"windows": windows, "mask": mask_form, "backend": name}

        def call(backend: SDPBackend | None = backend) -> torch.Tensor:
            if backend is None:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with torch.no_grad():
                    out = call()
                    sync(device)
                    times = []
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
                    for _ in range(repeats):
                        start = time.perf_counter()
                        out = call()
                        sync(device)
                        times.append(time.perf_counter() - start)
                    peak = torch.cuda.max_memory_allocated(device) - before if device.type == "cuda" else 0
                    row |= {
                        "status": "ok",
                        "ms": sorted(times)[len(times) // 2] * 1e3,
                        "mib": peak / 2**20,
                        "rel_err": float((out.double() - ref).norm() / ref.norm()),
                        "dispatched": chosen_backend(call) if backend is None else name,
                    }
            except RuntimeError as e:
                reasons = "; ".join(str(w.message).split("\n")[0] for w in caught)[:300]
                row |= {"status": "refused", "reason": reasons or str(e).split("\n")[0][:300]}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="64 and 16 windows, float32 (tests)")
    p.add_argument("--repeats", type=int, default=5)
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.float32 if args.smoke else torch.bfloat16
    counts = (64, 16) if args.smoke else ((1024 // RELEASED.swin_window) ** 2, 2048)
    rows = [
        r
        for w in counts
        for form in ("3-D", "4-D", "per window")
        for r in run_case(w, form, device, dtype, args.repeats)
    ]
    env = environment(device)
    table = [
        [
            str(r["windows"]),
            r["mask"],
            r["backend"],
            r.get("dispatched", "-"),
            f"{r['ms']:.2f}" if "ms" in r else "-",
            f"{r['mib']:.0f}" if "mib" in r else "-",
            f"{r['rel_err']:.1e}" if "rel_err" in r else "-",
            r.get("reason", "").replace("|", "/") or "-",
        ]
        for r in rows
    ]
    text = "\n".join(
        [
            f"## SDPA backends for the GTASR window attention (issue #11): benchmarks/sdpa_backends.py "
            f"({env['date']}, commit {args.commit or commit()})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); {str(dtype)[6:]}; q, k, v "
            f"[windows, {RELEASED.swin_num_heads}, {RELEASED.swin_window**2}, "
            f"{RELEASED.swin_embed_dim // RELEASED.swin_num_heads}]; median of {args.repeats}; MiB = peak allocated "
            "during the calls minus before; err = relative L2 against float64",
            "",
            markdown_table(
                ["windows", "mask", "backend asked", "ran as", "ms", "MiB", "err", "refused because"], table
            ),
        ]
    )
    publish(text, rows, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "rows": rows}


if __name__ == "__main__":
    main()
