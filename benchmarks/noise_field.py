"""GTASR's noise field for a new seed: the counter stream (default) against the earlier CPU stream (issue #11).

A 4096² RGB field (what a 1024² → 4096² GTASR run draws; ComfyUI's seed widget draws a new seed every run by
default) on the CPU and, when there is one, on the GPU:

- ``torch``: ``torch.randn`` from a CPU ``torch.Generator`` (one core), copied to the device;
- ``counter``: ``srkit.counter_normal`` on the device (``gtasr_core.noise.noise_field``'s default);
- ``counter @REV`` (with ``--baseline-rev REV``): ``srkit/counter_normal.py`` as it was at git revision REV,
  imported from a temporary copy, on the same devices (a before/after ratio from one run).

Each row is the fastest of ``--repeats`` draws with a new seed each (the device cache of the torch stream is
cleared); the counter rows check that the device's bits equal the CPU's.

    python benchmarks/noise_field.py                      # CPU and the GPU if any; 4096²
    python benchmarks/noise_field.py --baseline-rev 4d66317   # and the implementation of that commit
    python benchmarks/noise_field.py --smoke --no-write   # tests: 256²
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from common import add_output_arguments, environment, publish, results_section, sync
from roofline import commit

from sr4k.gtasr_core.noise import clear_noise_cache, noise_field
from sr4k.srkit import counter_normal as cn


def _time(fn: Any, device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for seed in range(1, repeats + 1):
        clear_noise_cache()
        sync(device)
        t0 = time.perf_counter()
        out = fn(seed)
        sync(device)
        times.append(time.perf_counter() - t0)
    assert out is not None
    return min(times), out


def module_at(rev: str) -> ModuleType:
    """``srkit/counter_normal.py`` as it was at git revision ``rev``, imported from a temporary copy."""
    repo = Path(__file__).resolve().parent.parent
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:srkit/counter_normal.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"counter_normal_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(
    side: int, repeats: int, devices: list[torch.device], baseline: tuple[str, ModuleType] | None = None
) -> list[dict[str, Any]]:
    shape = (1, 3, side, side)
    rows: list[dict[str, Any]] = []
    cpu_counter = cn.counter_normal(shape, repeats)  # the last seed's field, for the bit check
    for device in devices:
        cases: list[tuple[str, Any]] = [
            ("torch", lambda s, d=device: noise_field(shape, s, "torch", d)),
            ("counter", lambda s, d=device: noise_field(shape, s, "counter", d)),
        ]
        if baseline is not None:
            rev, module = baseline
            cases.append((f"counter @{rev}", lambda s, d=device, m=module: m.counter_normal(shape, s, d)))
        for stream, fn in cases:
            fn(0)  # warm-up (allocator, kernels, the table on the device)
            seconds, out = _time(fn, device, repeats)
            same = torch.equal(out.cpu(), cpu_counter) if stream.startswith("counter") else None
            rows.append(
                {
                    "device": str(device),
                    "stream": stream,
                    "s": seconds,
                    "mvalues_per_s": out.numel() / seconds / 1e6,
                    "bits_equal_cpu": same,
                }
            )
            print(rows[-1], flush=True)
    clear_noise_cache()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=4096, help="field side in pixels (RGB)")
    p.add_argument(
        "--repeats", type=int, default=3, help="draws per row, a new seed each; the fastest is reported"
    )
    p.add_argument("--smoke", action="store_true", help="256², one repeat (tests)")
    p.add_argument("--baseline-rev", help="also time srkit/counter_normal.py of this git revision")
    add_output_arguments(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.side, args.repeats = 256, 1
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    baseline = None if args.baseline_rev is None else (args.baseline_rev, module_at(args.baseline_rev))
    rows = run(args.side, args.repeats, devices, baseline)
    torch_s = {r["device"]: r["s"] for r in rows if r["stream"] == "torch"}
    table = [
        [
            r["device"],
            r["stream"],
            f"{r['s']:.4f}",
            f"{r['s'] / torch_s[r['device']]:.2f}",
            f"{r['mvalues_per_s']:.0f}",
            "-" if r["bits_equal_cpu"] is None else ("yes" if r["bits_equal_cpu"] else "NO"),
        ]
        for r in rows
    ]
    env = {d.type: environment(d) for d in devices}
    text = results_section(
        "GTASR noise field for a new seed: counter vs CPU stream (issue #11): benchmarks/noise_field.py "
        f"({env['cpu']['date']}, commit {args.commit or commit()})",
        [
            "Devices: "
            + "; ".join(f"{k}: {v['device']}" for k, v in env.items())
            + f"; torch {torch.__version__}, {torch.get_num_threads()} CPU threads",
            f"One 1×3×{args.side}² float32 field per draw, fastest of {args.repeats} (a new seed each); bits = "
            "the device's counter field equals the CPU's, bit for bit; / torch = this row's time over the torch "
            "stream's on the same device",
        ],
        ["device", "stream", "s", "/ torch", "M values/s", "bits = CPU"],
        table,
    )
    publish(text, rows, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "rows": rows}


if __name__ == "__main__":
    main()
