"""Layout audit (issue #11): which aten ops break the channels_last (NHWC) layout in GTASR and the F16 VAE.

Runs each target once per ``--layouts`` entry under :class:`layout_count.LayoutAudit` (random weights, this
version's perf defaults): channels_last; channels_last with torch's own GroupNorm (``nhwc_group_norm="off"``,
which on CUDA returns NCHW: what srkit/group_norm.py removes); NCHW for comparison. It lists the ops that convert
a map between the layouts: op, kind, count, GB a standalone transpose of the converted maps moves, and the
modules they ran in. Targets:

- GTASR: ``gtasr_core.upscale(net, lr, seed=0, allow_tile_fallback=False)`` under
  ``perf.options(gtasr_channels_last=...)`` (``upscale`` puts the weights and the input in that layout);
- F16 VAE: ``vae.encode(image)`` and ``vae.decode(z)`` under ``perf.options(vae_channels_last=...)`` after
  ``set_vae_layout(vae, ...)`` (the image enters NCHW, as in benchmarks/perf_parts.py).

The weights are put in the layout before each audit (not counted: a one-off conversion).

Each op runs once, with a Python hook around it: seconds on an H200. CPU kernels keep NHWC in places where CUDA
ones do not (and the reverse), so a CPU audit only shows the breaks that are in our own code or common to both.

    python benchmarks/layout_audit.py --json OUT/layout.json --results OUT/RESULTS_layout.md     # H200: < 1 min
    python benchmarks/layout_audit.py --device cpu --tiny --no-write          # tests: toy networks on the CPU
    python benchmarks/layout_audit.py --device cpu --gtasr-lr 32 --vae-px 128 --no-write  # real nets, CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from common import add_output_arguments, append_results, environment, markdown_table
from cost_models import build_vae, random_init_
from layout_count import LayoutAudit
from roofline import commit

from sr4k.gtasr_core import RELEASED, GTASRNet, upscale
from sr4k.gtasr_core.config import TINY, GTASRConfig
from sr4k.gtasr_core.noise import set_layout
from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.model import set_vae_layout
from sr4k.srkit import perf
from sr4k.srkit.group_norm import native_keeps_channels_last
from sr4k.training.op4ksr.toy import TOY_F16_VAE

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# name: (channels_last, other perf option changes); channels_last_native_gn: torch's own GroupNorm kernel (on CUDA
# it returns NCHW) instead of srkit/group_norm.py's layout-keeping one, to see what that one removes.
LAYOUTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "channels_last": (True, {}),
    "channels_last_native_gn": (True, {"nhwc_group_norm": "off"}),
    "nchw": (False, {}),
}
TOP_MODULES = 10  # (op, kind, module) rows per run in the Markdown (all of them in the JSON)


def audit(fn: Callable[[], Any], modules: dict[str, torch.nn.Module]) -> tuple[LayoutAudit, Any]:
    """Run ``fn`` once (no grad) under a :class:`LayoutAudit` of ``modules``; the audit and ``fn``'s result."""
    rec = LayoutAudit(modules)
    with torch.no_grad(), rec:
        out = fn()
    return rec, out


def audit_gtasr(net: GTASRNet, lr: torch.Tensor, channels_last: bool, **changes: Any) -> LayoutAudit:
    """The patch-free GTASR upscale of ``lr`` [1, 3, h, w] in the given layout (``changes``: perf options)."""
    set_layout(net, channels_last)  # as upscale does; here, so the one-off weight conversion is not counted
    with perf.options(gtasr_channels_last=channels_last, **changes):
        rec, _ = audit(lambda: upscale(net, lr, seed=0, allow_tile_fallback=False), {"gtasr": net})
    return rec


def audit_vae(
    vae: F16VAE, image: torch.Tensor, channels_last: bool, **changes: Any
) -> dict[str, LayoutAudit]:
    """``{"vae encode": ..., "vae decode": ...}`` of ``image`` [1, 3, H, W] in [-1, 1] in the given layout."""
    set_vae_layout(vae, channels_last)
    with perf.options(vae_channels_last=channels_last, **changes):
        enc, z = audit(lambda: vae.encode(image), {"vae": vae})
        dec, _ = audit(lambda: vae.decode(z), {"vae": vae})
    return {"vae encode": enc, "vae decode": dec}


def result(target: str, layout: str, rec: LayoutAudit, seconds: float) -> dict[str, Any]:
    """JSON-ready summary of one audited run."""
    rows = [dataclasses.asdict(r) for r in rec.rows()]
    by_module = [dataclasses.asdict(r) for r in rec.rows(by_module=True)]
    return {
        "target": target,
        "layout": layout,
        "ops": rec.ops,
        "map_ops": rec.map_ops,
        "nhwc_ops": rec.nhwc_ops,
        "breaks": len(rec.breaks),
        "gb_moved": sum(r["bytes_moved"] for r in rows) / 1e9,
        "seconds": seconds,
        "rows": rows,
        "by_module": by_module,
    }


def run_all(
    device: torch.device,
    dtype: torch.dtype,
    gtasr_cfg: GTASRConfig,
    gtasr_lr: int,
    vae: F16VAE | None,
    vae_px: int,
    layouts: list[str],
) -> list[dict[str, Any]]:
    """Audit GTASR (``gtasr_lr`` > 0) and the VAE (``vae`` given) in each of ``layouts``."""
    results = []
    net = random_init_(GTASRNet(gtasr_cfg).to(device=device, dtype=dtype)).eval() if gtasr_lr else None
    lr = torch.rand(1, 3, gtasr_lr, gtasr_lr, generator=torch.Generator().manual_seed(0))
    g = torch.Generator(device=device).manual_seed(0)
    image = (torch.rand(1, 3, vae_px, vae_px, device=device, generator=g) * 2 - 1).to(dtype)
    for layout in layouts:
        recs: dict[str, tuple[LayoutAudit, float]] = {}
        if net is not None:
            t0 = time.perf_counter()
            rec = audit_gtasr(net, lr, LAYOUTS[layout][0], **LAYOUTS[layout][1])
            recs["gtasr"] = rec, time.perf_counter() - t0
        if vae is not None:
            t0 = time.perf_counter()
            both = audit_vae(vae, image, LAYOUTS[layout][0], **LAYOUTS[layout][1])
            recs.update({k: (v, (time.perf_counter() - t0) / 2) for k, v in both.items()})
        for target, (rec, seconds) in recs.items():
            results.append(result(target, layout, rec, seconds))
            print(f"  {target:10s} {layout:23s} {len(rec.breaks):5d} breaks", flush=True)
    return results


def section(env: dict[str, str], results: list[dict[str, Any]], argv: list[str], rev: str, what: str) -> str:
    """The Markdown section: a totals table, then one table of breaks per audited run."""
    totals = [
        [
            r["target"],
            r["layout"],
            str(r["ops"]),
            str(r["map_ops"]),
            str(r["nhwc_ops"]),
            str(r["breaks"]),
            f"{r['gb_moved']:.3f}",
        ]
        for r in results
    ]
    parts = [
        f"## Layout audit (issue #11): benchmarks/layout_audit.py ({env['date']}, commit {rev})",
        "",
        f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); {what}",
        "- A break: an aten op turning an NHWC map into NCHW (`nhwc->nchw`) or back (`nchw->nhwc`), a conv fed "
        "an NCHW input with NHWC weights (cuDNN transposes it inside), or an NHWC input with NCHW weights. "
        "GB = 2 x the converted maps' bytes (a transpose's read + write), per single run; `-` = outside the "
        "network's modules; the JSON has the breaks per module. "
        "ops = non-view aten ops; map ops = those touching a 4-D float tensor; NHWC ops = those with an NHWC input",
        f"- Command: `python benchmarks/layout_audit.py {' '.join(argv)}`",
        "",
        markdown_table(["target", "layout", "ops", "map ops", "NHWC ops", "breaks", "GB"], totals),
    ]
    for r in results:
        if not r["rows"]:
            continue
        rows = [
            [
                x["op"],
                x["kind"],
                str(x["count"]),
                f"{x['bytes_moved'] / 1e9:.4f}",
                str(x["modules"]),
                f"`{x['module']}`",
                "x".join(map(str, x["shape"])) + f" {x['dtype']}",
            ]
            for x in r["rows"]
        ]
        top = [
            [x["op"], x["kind"], str(x["count"]), f"{x['bytes_moved'] / 1e9:.4f}", f"`{x['module']}`"]
            for x in r["by_module"][:TOP_MODULES]
        ]
        parts += [
            f"{r['target']}, {r['layout']}: per op",
            "",
            markdown_table(["op", "kind", "count", "GB", "modules", "top module (GB)", "largest map"], rows),
            f"{r['target']}, {r['layout']}: top {len(top)} of {len(r['by_module'])} (op, kind, module)",
            "",
            markdown_table(["op", "kind", "count", "GB", "module"], top),
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--gtasr-lr", type=int, default=256, help="GTASR LR side in px (0: skip GTASR)")
    p.add_argument("--vae-px", type=int, default=1024, help="VAE image side in px (0: skip the VAE)")
    p.add_argument("--tiny", action="store_true", help="toy networks (gtasr_core TINY, TOY_F16_VAE)")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma list of {', '.join(LAYOUTS)}")
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "meta":  # checked: meta convolutions return NCHW for NHWC input and weight (torch 2.13)
        p.error("--device meta: meta kernels do not reproduce CUDA's output layouts; use cuda (or cpu)")
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    layouts = args.layouts.split(",")
    if unknown := [x for x in layouts if x not in LAYOUTS]:
        p.error(f"--layouts: unknown {unknown}; use a comma list of {', '.join(LAYOUTS)}")
    gtasr_cfg = TINY if args.tiny else RELEASED
    if args.vae_px % 16:
        p.error(f"--vae-px {args.vae_px}: use a multiple of 16 (the F16 VAE's downscale)")
    vae = None
    if args.vae_px:
        if args.tiny:
            vae = (
                random_init_(F16VAE(TOY_F16_VAE).to(device=device, dtype=dtype)).eval().requires_grad_(False)
            )
        else:
            vae = build_vae(device, dtype)
    # Probe the native GroupNorm's layout (srkit/group_norm.py caches it) outside the audits: not a network op.
    native_gn_keeps = native_keeps_channels_last(device)
    t0 = time.perf_counter()
    results = run_all(device, dtype, gtasr_cfg, args.gtasr_lr, vae, args.vae_px, layouts)
    what = (
        f"{'toy' if args.tiny else 'real-size'} networks, random weights, {str(dtype).removeprefix('torch.')}, "
        f"GTASR LR {args.gtasr_lr}² (patch-free upscale), VAE {args.vae_px}² (encode; decode of its latent); "
        f"audit took {time.perf_counter() - t0:.1f} s; torch's GroupNorm keeps channels_last here: {native_gn_keeps}"
    )
    env = environment(device)
    text = section(env, results, [a for a in argv if a != "--no-write"], args.commit or commit(), what)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "what": what, "results": results}, indent=1))
    if not args.no_write:
        append_results(text, args.results)
    return results


if __name__ == "__main__":
    main()
