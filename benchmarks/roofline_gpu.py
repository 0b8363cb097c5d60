"""Per-op GPU time against the roofline bound (issue #11): which ops of OP4KSR and GTASR at 4K run how far
from their bound on the device, i.e. where the gap between ``roofline.py``'s bounds and the measured times is.

Runs the pipelines of ``roofline.py`` (``upscale_image`` 1024² -> 4096², GTASR ``upscale`` at LR 1024, this
version's perf defaults, cudnn.benchmark on as in the measured rows) with random weights on the device in
bf16: once to warm up, once plain (wall time), once under ``OpRecorder(timed=True)``: every aten op between
two CUDA events, with its FLOPs, bytes and roofline bound. The recorder's Python work leaves the GPU queue
empty between ops, so each op's time includes its launch latency (~10 us): the per-op sum exceeds the plain
run by about that much per op, and the efficiency (bound / time) of the large ops is what they really reach.

    python benchmarks/roofline_gpu.py --json OUT/roofline_gpu.json --results OUT/RESULTS_roofline_gpu.md  # < 1 min
    python benchmarks/roofline_gpu.py --smoke --device cpu --no-write      # tests: tiny networks on the CPU
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from common import add_output_arguments, append_results, environment, markdown_table, sync
from cost_models import build_flux, build_vae, random_init_
from cost_plans import SMOKE_GTASR
from flops import FLUX_DEV
from roofline import SMOKE_FLUX, commit
from roofline_count import OpRecord, summarize
from roofline_record import OpRecorder
from roofline_report import signature

from sr4k.gtasr_core import RELEASED, GTASRNet, upscale
from sr4k.op4ksr_core.headless import upscale_image

Timed = list[tuple[OpRecord, float]]


def profile(
    fn: Callable[[], Any], modules: dict[str, torch.nn.Module], device: torch.device
) -> tuple[Timed, float]:
    """Warm up, time one plain call, then record one call op by op: ([(record, seconds)], plain seconds)."""
    with torch.no_grad():
        fn()
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        plain = time.perf_counter() - start
        rec = OpRecorder(modules, device=device.type, timed=True)
        with rec:
            fn()
        return list(zip(rec.records, rec.op_seconds(), strict=True)), plain


def profile_op4ksr(
    smoke: bool, device: torch.device, dtype: torch.dtype, lr: torch.Tensor, out_px: int
) -> tuple[Timed, float]:
    """:func:`profile` of the headless OP4KSR upscale (stages: encode / transformer / decode / other)."""
    flux, vae = build_flux(SMOKE_FLUX if smoke else FLUX_DEV, device, dtype), build_vae(device, dtype)
    stages = {"encode": vae.encoder, "transformer": flux, "decode": vae.decoder}
    return profile(lambda: upscale_image(flux, vae, lr, long_side=out_px), stages, device)


def _agg(timed: Timed, key: Callable[[OpRecord], str]) -> dict[str, dict[str, float]]:
    acc: dict[str, dict[str, float]] = defaultdict(
        lambda: dict.fromkeys(("n", "s", "bound", "flops", "b"), 0)
    )
    for r, sec in timed:
        if r.where == "host":
            continue
        a = acc[key(r)]
        a["n"], a["s"], a["bound"] = a["n"] + 1, a["s"] + sec, a["bound"] + r.eager_s
        a["flops"], a["b"] = a["flops"] + r.flops, a["b"] + r.nbytes
    return acc


def _row(a: dict[str, float]) -> list[str]:
    s = max(a["s"], 1e-12)
    return [str(int(a["n"])), f"{a['s'] * 1e3:.1f}", f"{a['bound'] * 1e3:.1f}", f"{a['bound'] / s:.0%}"] + [
        f"{a['flops'] / s / 1e12:.0f}",
        f"{a['b'] / s / 1e12:.2f}",
    ]


COLS = ["ops", "GPU ms", "eager bound ms", "bound / GPU", "TFLOP/s", "TB/s"]


def kind_table(runs: dict[str, Timed]) -> tuple[list[str], list[list[str]]]:
    """Network, stage, kind: summed op time against the summed bound."""
    rows = []
    for net, timed in runs.items():
        for key, a in sorted(
            _agg(timed, lambda r: f"{r.stage}|{r.kind}").items(), key=lambda kv: -kv[1]["s"]
        ):
            if a["s"] >= 1e-3 or a["bound"] >= 1e-3:
                rows.append([net, *key.split("|"), *_row(a)])
    return ["network", "stage", "kind", *COLS], rows


def lost_table(runs: dict[str, Timed], top: int) -> tuple[list[str], list[list[str]]]:
    """The op classes that lose the most time against their bound (GPU time - bound)."""
    rows = []
    for net, timed in runs.items():
        groups = _agg(timed, lambda r: f"{r.stage}|{r.kind}|{signature(r)}")
        ranked = sorted(groups.items(), key=lambda kv: -(kv[1]["s"] - kv[1]["bound"]))[:top]
        for key, a in ranked:
            stage, kind, sig = key.split("|")
            rows.append([net, stage, f"{kind}: {sig}", *_row(a), f"{(a['s'] - a['bound']) * 1e3:.1f}"])
    return ["network", "stage", "op class", *COLS, "lost ms"], rows


def totals_table(runs: dict[str, tuple[Timed, float]]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for net, (timed, plain) in runs.items():
        t = summarize([r for r, _ in timed], lambda r: "all")["all"]
        ops = sum(s for r, s in timed if r.where != "host")
        rows.append([net, f"{plain:.3f}", f"{ops:.3f}", f"{t.eager_s:.3f}", f"{t.fused_s:.3f}"])
        rows[-1] += [f"{t.eager_s / plain:.0%}", f"{t.flops / plain / 1e12:.0f}"]
    headers = ["network", "plain run s", "sum of op times s", "eager bound s", "fused bound s"]
    return headers + ["eager bound / plain", "TFLOP/s (plain)"], rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny FLUX and GTASR, 32² -> 128², float32")
    p.add_argument("--parts", default="op4ksr,gtasr", help="comma-separated: op4ksr, gtasr")
    p.add_argument("--top", type=int, default=10, help="op classes listed per network")
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.float32 if args.smoke else torch.bfloat16
    lr_px, out_px = (32, 128) if args.smoke else (1024, 4096)
    torch.backends.cudnn.benchmark = True
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))

    runs: dict[str, tuple[Timed, float]] = {}
    if "op4ksr" in args.parts:
        runs["OP4KSR"] = profile_op4ksr(args.smoke, device, dtype, lr, out_px)
    if "gtasr" in args.parts:
        net = random_init_(GTASRNet(SMOKE_GTASR if args.smoke else RELEASED).to(device=device, dtype=dtype))
        runs["GTASR"] = profile(
            lambda: upscale(net.eval(), lr, seed=0, allow_tile_fallback=False), {"network": net}, device
        )

    env = environment(device)
    text = "\n".join(
        [
            f"## Per-op GPU time against the roofline bound (issue #11): benchmarks/roofline_gpu.py "
            f"({env['date']}, commit {args.commit or commit()})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); {str(dtype)[6:]}; "
            f"{lr_px}² -> {out_px}², random weights, perf defaults, cudnn.benchmark on",
            "- GPU ms: each aten op between two CUDA events (includes its launch latency: the recorder keeps "
            "the queue empty); bound: roofline_count's eager bound of the same op (790 TFLOP/s, 4.3 TB/s); "
            "TFLOP/s and TB/s: what the ops reached",
            "",
            markdown_table(*totals_table(runs)),
            "By stage and op kind:",
            "",
            markdown_table(*kind_table({n: t for n, (t, _) in runs.items()})),
            "Op classes losing the most time against their bound:",
            "",
            markdown_table(*lost_table({n: t for n, (t, _) in runs.items()}, args.top)),
        ]
    )
    print(text)
    if not args.no_write:
        append_results(text, args.results)
    out = {
        net: {
            "plain_s": plain,
            "ops": [
                {"op": r.op, "kind": r.kind, "where": r.where, "stage": r.stage, "block": r.block}
                | {
                    "flops": r.flops,
                    "bytes": r.nbytes,
                    "bound_s": r.eager_s,
                    "seconds": s,
                    "shapes": r.shapes,
                }
                for r, s in timed
            ],
        }
        for net, (timed, plain) in runs.items()
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out), encoding="utf-8")
    return {"text": text, **out}


if __name__ == "__main__":
    main()
