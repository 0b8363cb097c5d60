"""OP4KSR end to end at 4096^2: FLUX.1-dev-size transformer + real-size F16 VAE, time per stage and peak memory.

Random weights (cost does not depend on them). Runs the headless path unchanged
(``op4ksr_core.headless.upscale_image``: bicubic to the target, pad, F16 encode, one transformer step with an
empty 1-token text context, decode, wavelet colour correction) and reads each stage's time and peak memory from
forward hooks (``common.StageTimer``); 'other' is the rest (bicubic, transfers, colour correction on the CPU).

    python benchmarks/op4ksr_4k.py                 # CUDA: FLUX.1-dev size, LR 1024 -> 4096, bf16
    python benchmarks/op4ksr_4k.py --smoke         # reduced (default on CPU): depth 1+1 transformer, 256^2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from common import GIB, append_results, environment, markdown_table
from cost import DTYPES, SMOKE, build_flux, build_vae, run_e2e
from flops import FLUX_DEV, flux_flops, image_tokens

from sr4k.op4ksr_core.onestep import OneStepConfig
from sr4k.op4ksr_core.vae.config import FLUX_F16


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="reduced transformer and size (default on CPU)")
    p.add_argument("--out-px", type=int, help="output side (default 4096; 256 with --smoke)")
    p.add_argument("--scale", type=int, default=4, help="SR factor: LR side = out / scale (16 = DIV4K-50)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument(
        "--results", type=Path, default=None, help="markdown file to append to (default RESULTS.md)"
    )
    p.add_argument("--no-write", action="store_true", help="print the section, do not append it")
    return p.parse_args(argv)


def section(env: dict[str, str], r: dict[str, Any], argv: list[str]) -> str:
    rows = [[k, f"{v:.3f}", f"{r['stage_peak_gib'][k]:.2f}"] for k, v in r["stage_s"].items()]
    rows += [
        ["other (bicubic, pad, transfers, colour)", f"{r['other_s']:.3f}", "-"],
        ["**total**", f"**{r['median_s']:.3f}**", f"**{r['peak_gib']:.2f}**"],
    ]
    cpu = (
        f" (process CPU time {statistics.median(r['cpu_s']):.2f} s: the machine was shared)"
        if env["device"].startswith("CPU")
        else ""
    )
    mem = (
        "process peak RSS (sampled)" if env["device"].startswith("CPU") else "torch.cuda.max_memory_allocated"
    )
    return "\n".join(
        [
            f"## OP4KSR end to end {r['lr_px']}² -> {r['out_px']}²: benchmarks/op4ksr_4k.py ({env['date']})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); dtype {r['dtype']}",
            f"- Transformer: {r['transformer']} ({r['params'] / 1e9:.3f} B parameters, random weights), "
            f"{r['tokens']:,} image tokens + {r['text_tokens']} text token(s), t* = {r['t_star']}; "
            f"{r['transformer_tflop']:.4g} TFLOP per forward (analytical); F16 VAE real size, partitioned decode",
            f"- Median of {r['repeats']} run(s) after {r['warmup']} warm-up{cpu}; peak memory per stage: {mem}",
            f"- Command: `python benchmarks/op4ksr_4k.py {' '.join(argv)}`",
            "",
            markdown_table(["stage", "median s", "peak GiB"], rows),
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    smoke = args.smoke or device.type != "cuda"
    cfg, dtype_name = (SMOKE.flux, "float32") if smoke else (FLUX_DEV, "bfloat16")
    out_px = args.out_px or (256 if smoke else 4096)
    if out_px % args.scale:
        raise SystemExit(f"--out-px {out_px} is not divisible by --scale {args.scale}")
    dtype, config = DTYPES[dtype_name], OneStepConfig()
    transformer, vae = build_flux(cfg, device, dtype), build_vae(device, dtype)
    warmup = 0 if smoke else 1
    m, stages = run_e2e(transformer, vae, out_px // args.scale, out_px, device, args.repeats, warmup, config)
    tokens = image_tokens(out_px, FLUX_F16.downscale)
    result = {
        "lr_px": out_px // args.scale,
        "out_px": out_px,
        "dtype": dtype_name,
        "repeats": args.repeats,
        "warmup": warmup,
        "median_s": m.median,
        "times_s": m.times,
        "cpu_s": m.cpu_times,
        "peak_gib": m.peak_bytes / GIB,
        "transformer": "reduced (depth 1+1, 4 heads)" if smoke else "FLUX.1-dev size (19 + 38 blocks)",
        "params": sum(p.numel() for p in transformer.parameters()),
        "tokens": tokens,
        "text_tokens": config.empty_text_tokens,
        "t_star": config.t_star,
        "transformer_tflop": flux_flops(cfg, tokens, config.empty_text_tokens)["exact"] / 1e12,
        **stages,
    }
    env = environment(device)
    text = section(env, result, [a for a in argv if a != "--no-write"])
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"env": env, **result}, indent=1))
    if not args.no_write:
        append_results(text, *([args.results] if args.results else []))
    return result


if __name__ == "__main__":
    main()
