"""What *SR4K Inspect Artifacts* costs per image: ``srkit.artifacts.inspect_one`` (the node's whole work per image:
periodicity score and map, seam search and map, the heatmap) at 3840×2160 and 4096², on the CPU and, when there is
one, the GPU.

Each row: the first call (on a GPU it makes the FFT plans), then the median of ``--repeats`` calls, and the peak
memory of those calls (CUDA: max allocated; CPU: max RSS over the process, so it includes torch itself). The image
is a smooth random texture with a visible 32-px grid, so both detectors have something to find.

    python benchmarks/inspect_artifacts.py                   # both sizes, CPU and the GPU if any
    python benchmarks/inspect_artifacts.py --no-cpu          # the GPU rows only (the CPU takes ~1 min a call)
    python benchmarks/inspect_artifacts.py --smoke --no-write  # tests: 256², one repeat
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from common import GIB, add_output_arguments, environment, measure, publish, results_section, sync
from roofline import commit

from sr4k.srkit.artifacts import inspect_one
from sr4k.srkit.periodicity import DEFAULT_PERIOD_PX

SIZES = ((2160, 3840), (4096, 4096))  # (H, W)


def test_image(h: int, w: int, period_px: int = DEFAULT_PERIOD_PX) -> torch.Tensor:
    """[3, H, W] in [0, 1]: low-pass random texture plus a 20 % grid of period ``period_px`` (seeded)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, max(h // 16, 1), max(w // 16, 1), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    rows = (torch.arange(h) % period_px == 0).float()[:, None]
    cols = (torch.arange(w) % period_px == 0).float()[None, :]
    return (img * 0.8 + 0.2 * torch.maximum(rows, cols)).clamp(0, 1)


def run(sizes: list[tuple[int, int]], devices: list[torch.device], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for device in devices:
        for h, w in sizes:
            image = test_image(h, w).to(device)
            sync(device)
            start = time.perf_counter()
            first, _ = inspect_one(image, DEFAULT_PERIOD_PX, 0, lambda _k: None)
            sync(device)
            first_s = time.perf_counter() - start
            m = measure(
                lambda img=image: inspect_one(img, DEFAULT_PERIOD_PX, 0, lambda _k: None),
                device,
                repeats=repeats,
                warmup=0,
            )
            rows.append(
                {
                    "device": str(device),
                    "size": f"{w}x{h}",
                    "first_s": first_s,
                    "median_s": m.median,
                    "peak_gib": m.peak_bytes / GIB,
                    "periodicity": first.periodicity,
                    "seams": first.seams,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2, help="timed calls per row after the first (median)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    p.add_argument("--smoke", action="store_true", help="256², one repeat, CPU only (tests)")
    add_output_arguments(p)
    args = p.parse_args(argv)
    sizes = [(256, 256)] if args.smoke else list(SIZES)
    devices = [] if args.no_cpu else [torch.device("cpu")]
    if torch.cuda.is_available() and not args.smoke:
        devices.append(torch.device("cuda"))
    if not devices:
        p.error("no device to measure: --no-cpu and no GPU")
    n = 1 if args.smoke else args.repeats
    rows = run(sizes, devices, n)
    env = {d.type: environment(d) for d in devices}
    table = [
        [
            env[r["device"].split(":")[0]]["device"],
            r["size"],
            f"{r['first_s']:.2f}",
            f"{r['median_s']:.2f}",
            f"{r['peak_gib']:.2f}",
            f"{r['periodicity']:.3f} / {r['seams']:.2f}",
        ]
        for r in rows
    ]
    first_env = next(iter(env.values()))
    text = results_section(
        "SR4K Inspect Artifacts per image: benchmarks/inspect_artifacts.py "
        f"({first_env['date']}, commit {args.commit or commit()})",
        [
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; float32; `srkit.artifacts.inspect_one` "
            "(the node's work per image), period 32 px, no tile-stride hint",
            f"first = the first call (GPU: FFT plans are made); median of {n} call{'s' if n > 1 else ''} after "
            "it; peak = CUDA max allocated, or the process's max RSS on the CPU (torch included)",
            "Image: smooth random texture + a 20 % 32-px grid (scores = periodicity / seam ratio)",
        ],
        ["device", "image", "first s", "median s", "peak GiB", "scores"],
        table,
    )
    data = {"rows": rows, "text": text}
    publish(text, data, results=args.results, no_write=args.no_write, json_path=args.json)
    return data


if __name__ == "__main__":
    main()
