"""Folder throughput of ``sr4k upscale`` with the file I/O in turn or in threads (``cli/folder.py``, ``--io-workers``).

What this measures is the CPU side of a folder run on this machine: reading the 1024² input PNGs, quantising and
PNG-encoding the 4096² outputs, the CLI's atomic rename, and how much of that the threads hide behind the model.

``--model stand-in`` (default, any machine): the model is a stand-in for the GPU. It waits ``--gpu-s`` seconds (the
H200's measured time per image, which releases the CPU as a CUDA synchronisation does) and returns an output
prepared beforehand (a bicubic x4 of the input plus fine texture, so it compresses like a real upscale, not like a
flat image). The figures are per-image seconds for this CPU with a GPU of the given speed; the GPU's own time is
the floor. ``--model gtasr`` (a GPU machine; device step ``folder``): the released GTASR architecture with random
weights upscales on ``--device`` as the CLI runs it (``gtasr_core.upscale``, bf16 on CUDA), so the row is what a
folder run costs there.

    python benchmarks/folder_io.py                           # 6 images, GPU 0.82 s (GTASR) and 1.45 s (OP4KSR)
    python benchmarks/folder_io.py --model gtasr             # on a GPU machine
    python benchmarks/folder_io.py --smoke --no-write        # tests: 3 tiny images (add --model gtasr: toy GTASR)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import add_output_arguments, environment, markdown_table, publish
from cost import SMOKE_GTASR, random_init_
from PIL import Image
from roofline import commit

from sr4k.cli.folder import Job, Model, run_folder
from sr4k.cli.images import load_image, save_image
from sr4k.cli.shard import write_atomically
from sr4k.gtasr_core import RELEASED, GTASRNet, upscale

# H200 seconds per 1024² -> 4096² image (benchmarks/RESULTS.md, perf toggles 2026-11-30): GTASR, OP4KSR defaults.
GPU_S = (0.82, 1.45)


def make_inputs(folder: Path, n: int, side: int, seed: int = 0) -> list[Path]:
    """``n`` smooth-plus-texture RGB PNGs of ``side``² (compress like photographs, not like noise)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = torch.from_numpy(rng.random((1, 3, max(2, side // 16), max(2, side // 16)), dtype=np.float32))
        img = F.interpolate(small, size=(side, side), mode="bicubic", align_corners=False)
        img = (img + torch.from_numpy(rng.normal(0, 0.02, img.shape).astype(np.float32))).clamp(0, 1)
        a = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        path = folder / f"in{i:03d}.png"
        Image.fromarray(a).save(path)
        paths.append(path)
    return paths


def prepared_outputs(paths: list[Path], scale: int, seed: int = 1) -> dict[Path, torch.Tensor]:
    """What the stand-in model returns for each input: bicubic x``scale`` plus fine texture, [1, 3, H, W] float32."""
    gen = torch.Generator().manual_seed(seed)
    outs = {}
    for p in paths:
        up = F.interpolate(load_image(p), scale_factor=scale, mode="bicubic", align_corners=False)
        outs[p] = (up + 0.01 * torch.randn(up.shape, generator=gen)).clamp(0, 1)
    return outs


def stand_in(outs: dict[Path, torch.Tensor], gpu_s: float) -> tuple[Model, Callable[[Path], torch.Tensor]]:
    """The GPU stand-in and its loader: the loader notes the order of the files read (the reader thread reads
    in order, one at a time), the model waits ``gpu_s`` and returns the prepared output of the next of them."""
    order: list[Path] = []

    def load(path: Path) -> torch.Tensor:
        image = load_image(path)
        order.append(path)
        return image

    def model(image: torch.Tensor) -> torch.Tensor:
        src = order.pop(0)
        time.sleep(gpu_s)  # the GPU at work: this thread waits and leaves the CPU to the others
        return outs[src]

    return model, load


def gtasr_model(smoke: bool, device: torch.device) -> Model:
    """The released GTASR architecture (toy size with ``smoke``) with random weights, run as the CLI runs it."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    net = random_init_(GTASRNet(SMOKE_GTASR if smoke else RELEASED).to(device=device, dtype=dtype)).eval()
    return lambda image: upscale(net, image, seed=0, allow_tile_fallback=False)


def run_case(
    paths: list[Path], out_dir: Path, model: Model, load: Callable[[Path], torch.Tensor], workers: int
) -> dict[str, Any]:
    """One folder run; returns its seconds per image and the mean write time of one output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        old.unlink()
    jobs = [Job(k, p, out_dir / p.name) for k, p in enumerate(paths, 1)]
    write_s: list[float] = []
    out_mib: list[float] = []

    def save(job: Job, image: torch.Tensor, out: torch.Tensor) -> None:
        t0 = time.perf_counter()
        write_atomically(job.dst, lambda path: save_image(out, path))
        write_s.append(time.perf_counter() - t0)
        out_mib.append(out.numel() * out.element_size() / 2**20)

    run = run_folder(jobs, load, model, save, io_workers=workers)
    return {
        "workers": workers,
        "images": run.images,
        "s_per_image": run.seconds_per_image,
        "write_s": sum(write_s) / len(write_s),
        "mib_per_output": out_mib[0],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=6, help="images per run (default 6)")
    p.add_argument(
        "--side", type=int, default=1024, help="input side in pixels; outputs are x4 (default 1024)"
    )
    p.add_argument("--model", choices=("stand-in", "gtasr"), default="stand-in", help="module docstring")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="--model gtasr")
    p.add_argument(
        "--gpu-s", type=float, nargs="+", default=list(GPU_S), help="stand-in: GPU seconds per image"
    )
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4], help="--io-workers values")
    p.add_argument(
        "--smoke", action="store_true", help="3 images of 32², GPU 0.01 s, workers 0 and 2 (tests)"
    )
    add_output_arguments(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.images, args.side, args.gpu_s, args.workers = 3, 32, [0.01], [0, 2]
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sr4k-folder-io-") as tmp:
        paths = make_inputs(Path(tmp) / "in", args.images, args.side)
        if args.model == "gtasr":
            model = gtasr_model(args.smoke, device)
            model(load_image(paths[0]))  # warm-up: kernels, cached noise
            cases = [("GTASR", model, load_image)]
        else:
            outs = prepared_outputs(paths, 4)
            cases = [(f"{g:.2f}", *stand_in(outs, g)) for g in args.gpu_s]
        for label, model, load in cases:
            for workers in args.workers:
                rows.append({"model": label, **run_case(paths, Path(tmp) / "out", model, load, workers)})
                print(rows[-1], flush=True)
    serial = {r["model"]: r["s_per_image"] for r in rows if r["workers"] == 0}
    env = environment(torch.device("cpu"))
    gpu = f"; GPU {environment(device)['device']}" if args.model == "gtasr" else ""
    table = [
        [
            r["model"],
            str(r["workers"]),
            f"{r['s_per_image']:.2f}",
            f"{serial[r['model']] / r['s_per_image']:.2f}x" if r["model"] in serial else "-",
            f"{r['write_s']:.2f}",
        ]
        for r in rows
    ]
    side = args.side
    text = "\n".join(
        [
            f"## Folder I/O of `sr4k upscale` (issue #11): benchmarks/folder_io.py ({env['date']}, "
            f"commit {args.commit or commit()})",
            "",
            f"- Machine: {env['device']}, {os.cpu_count()} cores{gpu}; torch {env['torch']}; Pillow {Image.__version__}",
            f"- {args.images} RGB inputs of {side}² -> outputs {4 * side}² 8-bit PNG (zlib level 1, "
            f"{rows[0]['mib_per_output']:.0f} MiB float32 each in memory), written atomically as the CLI does. "
            + (
                "The model is GTASR (released architecture, random weights) on the GPU, as the CLI runs it"
                if args.model == "gtasr"
                else "The model is a stand-in for the GPU: it waits the GPU's seconds per image (H200: GTASR "
                "0.82 s, OP4KSR 1.45 s) and returns a prepared output, so the GPU's own time is the floor"
            ),
            "- s/image = wall time of the whole folder run / images; speed-up against `--io-workers 0` (read, "
            "upscale, write in turn) at the same GPU time; write s = mean time to quantise, encode and rename one "
            "output (in a writer thread, concurrent writes share the cores)",
            "",
            markdown_table(["model (GPU s/image)", "--io-workers", "s/image", "speed-up", "write s"], table),
        ]
    )
    publish(text, rows, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "rows": rows}


if __name__ == "__main__":
    main()
