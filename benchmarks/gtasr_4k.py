"""Benchmark GTASR inference: patch-free vs released-style tiling, wall time and peak memory.

Released architecture (171.5 M parameters) with random weights; one LR image of --lr-size pixels.
Each mode runs in a fresh worker process, so its peak memory is its own:
  * CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the CUDA context);
  * CPU: growth of the worker's maximum resident set size (``resource.getrusage``) over the moment
    before the run (model and input already loaded); it counts allocator caching, so it is an upper bound.

    python benchmarks/gtasr_4k.py                       # CUDA if available (LR 1024 -> 4K), else CPU (LR 128)
    python benchmarks/gtasr_4k.py --device cpu --lr-size 128 --tile 64 --overlap 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import RESULTS, append_results, device_name

from sr4k.gtasr_core import DEFAULT_OVERLAP, DEFAULT_TILE, RELEASED, build_released, plan_tiles, upscale
from sr4k.srkit.sizing import padded_size

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument(
        "--lr-size", type=int, default=None, help="LR side (default 1024 on CUDA, 128 on CPU)"
    )
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help=f"LR tile (released {DEFAULT_TILE})")
    parser.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"LR overlap (released {DEFAULT_OVERLAP}: stride {DEFAULT_TILE - DEFAULT_OVERLAP})",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not append it")
    parser.add_argument("--worker", choices=["patch-free", "tiled"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.lr_size is None:
        args.lr_size = 1024 if torch.device(args.device).type == "cuda" else 128
    return args


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    """User + system CPU time of this process: on a shared CPU it varies less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(args: argparse.Namespace) -> dict[str, object]:
    """Run one mode once (after a small warm-up) and return its time and peak memory."""
    device = torch.device(args.device)
    net = build_released(device=device, dtype=DTYPES[args.dtype])
    lr = torch.rand(1, 3, args.lr_size, args.lr_size, generator=torch.Generator().manual_seed(0))
    rss_before = _max_rss_bytes()  # before the warm-up, whose own peak would otherwise hide the run's
    upscale(net, lr[..., : net.lr_multiple, : net.lr_multiple], seed=0, allow_tile_fallback=False)  # warm-up
    tile = args.tile if args.worker == "tiled" else None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    try:
        upscale(net, lr, seed=0, tile=tile, overlap=args.overlap, allow_tile_fallback=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except torch.OutOfMemoryError:
        return {"mode": args.worker, "oom": True}
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_before
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _max_rss_bytes() - rss_before
    return {
        "mode": args.worker,
        "oom": False,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_bytes": peak,
        "load_after": os.getloadavg()[0],
    }


def run_mode(mode: str, argv: list[str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, __file__, *argv, "--worker", mode], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section(args: argparse.Namespace, argv: list[str], name: str, results: list[dict[str, object]]) -> str:
    multiple = RELEASED.lr_multiple
    side = padded_size(args.lr_size, args.lr_size, multiple)[0]
    rects = plan_tiles(side, side, args.tile, args.overlap, multiple)  # upscale's default plan
    n_tiles = len(rects)
    memory = (
        "torch.cuda.max_memory_allocated"
        if torch.device(args.device).type == "cuda"
        else "max RSS growth of a fresh worker process (resource.getrusage; upper bound)"
    )
    rows = []
    for r in results:
        label = (
            "patch-free"
            if r["mode"] == "patch-free"
            else f"tiled ≤ {args.tile}/{args.overlap} ({rects[0].h}² tiles)"
        )
        tiles = 1 if r["mode"] == "patch-free" else n_tiles
        if r["oom"]:
            rows.append(f"| {label} | {tiles} | out of memory | - | - | - |")
        else:
            rows.append(
                f"| {label} | {tiles} | {r['seconds']:.2f} | {r['cpu_seconds']:.1f} | "
                f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['load_after']:.1f} |"
            )
    return "\n".join(
        [
            f"## GTASR inference, LR {args.lr_size}² → HR {4 * args.lr_size}² ({dt.date.today().isoformat()})",
            "",
            f"- Device: {name}; torch {torch.__version__}; dtype {args.dtype}",
            "- Network: released GTASR architecture (171,518,529 parameters), random weights, one image, one call "
            "per image or tile (after a warm-up call)",
            f"- Peak memory: {memory}",
            f"- Command: `python benchmarks/gtasr_4k.py {' '.join(argv)}`",
            "",
            "| mode | network calls | wall time (s) | process CPU time (s) | peak memory | load avg after |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    argv = [a for a in argv if a != "--no-write"]
    name = device_name(torch.device(args.device))
    results = [run_mode("patch-free", argv), run_mode("tiled", argv)]
    text = section(args, argv, name, results)
    print(text)
    if not args.no_write:
        append_results(text, args.results)


if __name__ == "__main__":
    main()
