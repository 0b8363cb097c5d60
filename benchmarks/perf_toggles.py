"""Issue #11's optimisations, each as a toggle against the baseline, in one process (random weights).

Parts: the F16 VAE at 4096² (mid-block GEMM attention, channels_last, chunked upsample, cudnn.benchmark, the
defaults of ``srkit.perf`` and the lean layout); OP4KSR headless 1024² -> 4096² per stage (defaults, constant
AdaLN modulation, fp8 row-wise, ``--low-vram`` = constant modulation + fp8 weight-only); GTASR 1024² -> 4096²
patch-free (device input, native GroupNorm, box resample, head in slabs, lean channels_last layout, counter noise);
optionally regional torch.compile (``compile``: the FLUX blocks; ``compile2``, opt-in: the F16 VAE and GTASR
blocks in both layouts, OP4KSR with FLUX blocks + VAE compiled, + fp8 row-wise, + ``--low-vram``). Every row gives the median time, the process peak (weights included), the
working memory and the relative L2 error against the baseline (``srkit.perf.BASELINE``) output.

    python benchmarks/perf_toggles.py --results OUT/RESULTS_perf.md --json OUT/perf.json   # H200: ~3-4 min
    python benchmarks/perf_toggles.py --smoke --no-write                                   # CPU, tiny sizes
    python benchmarks/perf_toggles.py --parts compile2 --budget-s 400 --json OUT/c2.json   # H200: ~4-6 min (est.)

On the lent H200 (diffusers is not in its image: carry its wheel, see shared/tools/gpu_probe.md):
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl; mkdir /tmp/pk; ln -s $PWD /tmp/pk/sr4k
    PYTHONPATH=/tmp/site:/tmp/pk python3 benchmarks/perf_toggles.py --commit HASH --json $OUT/perf.json ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
from common import add_output_arguments, append_results, environment, markdown_table, matmul_ceiling
from cost import SMOKE, SMOKE_GTASR
from flops import FLUX_DEV
from perf_compile2 import part_compile2
from perf_parts import Ctx, free, part_compile, part_gtasr, part_op4ksr, part_vae

from sr4k.gtasr_core import RELEASED


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_json(path: Path | None, c: Ctx) -> None:
    """Rows and extras so far (after each part, and after each step of ``compile2``)."""
    if path:
        path.write_text(json.dumps({"rows": c.rows, "extra": c.extra}, indent=1, default=str))


def section(env: dict[str, str], c: Ctx, argv: list[str], ceiling: float, rev: str) -> str:
    rows = []
    for r in c.rows:
        stages = r.get("stages_s")
        st = (
            " / ".join(f"{stages.get(k, 0):.3f}" for k in ("encode", "transformer", "decode"))
            + f" / {r['other_s']:.3f}"
            if stages
            else "-"
        )
        err = "-" if r["rel_err"] is None else f"{r['rel_err']:.2e}"
        rows.append(
            [
                r["part"],
                r["variant"],
                f"{r['median_s']:.3f}",
                st,
                f"{r['peak_gib']:.2f}",
                f"{r['work_gib']:.2f}",
                err,
            ]
        )
    extra = "; ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in c.extra.items())
    return "\n".join(
        [
            f"## Perf toggles (issue #11): benchmarks/perf_toggles.py ({env['date']}, commit {rev})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); dtype {c.dtype}; "
            f"matmul ceiling {ceiling:.1f} TFLOP/s",
            f"- Random weights of the real architectures; median of {c.repeats} after {c.warmup} warm-up; peak = "
            "max allocated (weights included), work = peak - allocated before; err = ||out - baseline|| / "
            "||baseline||; stages = encode / transformer / decode / other (s)",
            f"- {extra}" if extra else "- (no extra numbers)",
            f"- Command: `python benchmarks/perf_toggles.py {' '.join(argv)}`",
            "",
            markdown_table(
                ["part", "variant", "median s", "stages s", "peak GiB", "work GiB", "err vs baseline"], rows
            ),
        ]
    )


def main(argv: list[str] | None = None) -> Ctx:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (default on CPU)")
    p.add_argument("--parts", default="vae,op4ksr,gtasr,compile")
    p.add_argument("--budget-s", type=float, default=270.0, help="skip later parts past this wall time")
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    smoke = args.smoke or device.type != "cuda"
    t0 = time.perf_counter()
    c = Ctx(
        device,
        torch.float32 if smoke else torch.bfloat16,
        repeats=1 if smoke else 2,
        warmup=0 if smoke else 1,
    )
    ceiling = matmul_ceiling(device, c.dtype, 512 if smoke else 8192)
    flux_cfg, gtasr_cfg = (SMOKE.flux, SMOKE_GTASR) if smoke else (FLUX_DEV, RELEASED)
    out_px, lr_px = (128, 32) if smoke else (4096, 1024)
    parts = {
        "vae": (lambda: part_vae(c, out_px, out_px // 2), 0),
        "op4ksr": (lambda: part_op4ksr(c, flux_cfg, lr_px, out_px, fp8=device.type == "cuda"), 60),
        "gtasr": (lambda: part_gtasr(c, gtasr_cfg, 64 if smoke else lr_px), 40),
        "compile": (lambda: part_compile(c, flux_cfg, lr_px, out_px), 120),
        # opt-in (not in the default --parts): regional compile of the VAE and GTASR, OP4KSR all compiled
        "compile2": (
            lambda: part_compile2(
                c,
                flux_cfg,
                gtasr_cfg,
                vae_px=out_px,
                gtasr_lr_px=64 if smoke else lr_px,
                lr_px=lr_px,
                out_px=out_px,
                deadline=float("inf") if smoke else t0 + args.budget_s,
                checkpoint=lambda: write_json(args.json, c),
            ),
            60,
        ),
    }
    for name in args.parts.split(","):
        fn, need = parts[name]
        if time.perf_counter() - t0 + need > args.budget_s and not smoke:
            c.extra[f"skipped_{name}"] = "budget"
            continue
        print(f"[{time.perf_counter() - t0:6.1f} s] part {name}", flush=True)
        try:
            fn()
        except Exception as e:
            c.extra[f"error_{name}"] = f"{type(e).__name__}: {str(e)[:200]}"
            traceback.print_exc()
        free()  # the part's models and tensors died with its frame
        write_json(args.json, c)
    c.extra["total_s"] = time.perf_counter() - t0
    env = environment(device)
    text = section(env, c, [a for a in argv if a != "--no-write"], ceiling, args.commit or commit())
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps({"env": env, "rows": c.rows, "extra": c.extra}, indent=1, default=str)
        )
    if not args.no_write:
        append_results(text, args.results)
    return c


if __name__ == "__main__":
    main()
