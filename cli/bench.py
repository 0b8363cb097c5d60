"""``sr4k bench``: score SR outputs against HR images, or run SR methods over a benchmark dataset.

    sr4k bench --hr HR_DIR --sr SR_DIR --json scores.json [--md scores.md] [--metrics psnr,ssim,lpips]
    sr4k bench --dataset DIR --methods bicubic,gtasr,gtasr-tiled,op4ksr,op4ksr-norfr,folder:NAME=DIR \\
               --out OUT_DIR --json table.json [--md table.md] [--gtasr FILE] [--flux FILE --vae FILE]

A dataset is a synthetic benchmark (``srkit.datasets.build_synthetic_benchmark``; ``--scale`` picks x4 or
x16), a DIV4K-50-style folder (``HQ|HR|GT`` + ``LQ|LR``) or a folder of LR-only real-world images (then only
no-reference metrics are scored and ``--scale`` sets the output size). Outputs are written as 8-bit PNGs to
``OUT_DIR/<method>/<stem>.png`` and scored from those files (the papers' protocol reads 8-bit images).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..op4ksr_core.onestep import OneStepConfig
from ..op4ksr_core.settings import AUTO
from ..op4ksr_core.vae.config import DECODE_MODES
from ..srkit.datasets import Dataset, load_dataset
from ..srkit.image_io import image_size, read_image, write_image
from ..srkit.iqa import MissingMetricsExtra
from . import devices
from .bench_methods import Method, Models, output_dir, parse_methods, timed_run
from .bench_score import (
    ALL_METRICS,
    Scorer,
    markdown_table,
    match_outputs,
    not_applicable_notes,
    parse_metrics,
    score_folders,
    score_items,
)

log = logging.getLogger(__name__)


def add_bench_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``bench`` options on ``p`` (shared by the ``sr4k`` subcommand and ``python -m``)."""
    src = p.add_argument_group("what to score (either --hr/--sr or --dataset/--methods)")
    src.add_argument("--hr", type=Path, help="folder of HR (ground-truth) images")
    src.add_argument("--sr", type=Path, help="folder of SR outputs to score; files pair with --hr by stem")
    src.add_argument("--dataset", type=Path, help="benchmark folder (synthetic, DIV4K-50 layout or LR-only)")
    src.add_argument(
        "--methods", help="comma list: bicubic, gtasr, gtasr-tiled, op4ksr, op4ksr-norfr, folder:NAME=DIR"
    )
    src.add_argument("--out", type=Path, help="where --dataset runs write OUT/<method>/<stem>.png")
    src.add_argument(
        "--scale",
        type=int,
        help="x4 or x16 set of a synthetic benchmark; output scale of an LR-only folder (default 4)",
    )
    src.add_argument("--limit", type=int, help="only the first N images (by stem)")
    out = p.add_argument_group("results")
    out.add_argument("--json", type=Path, required=True, help="write the scores here (JSON)")
    out.add_argument("--md", type=Path, help="also write a Markdown table here")
    out.add_argument(
        "--metrics",
        help=f"comma list from {', '.join(ALL_METRICS)} (default psnr,ssim,seam,"
        "periodicity; lpips..clipiqa need pip install sr4k[metrics])",
    )
    out.add_argument("--crop-border", type=int, default=0, help="pixels cropped per side for PSNR/SSIM")
    mdl = p.add_argument_group("models")
    mdl.add_argument("--gtasr", type=Path, help="GTASR checkpoint (.pth BasicSR or .safetensors)")
    mdl.add_argument("--flux", type=Path, help="FLUX transformer weights (BFL/ComfyUI or diffusers keys)")
    mdl.add_argument("--vae", type=Path, help="FLUX VAE weights, used as the F16 VAE")
    mdl.add_argument(
        "--decode-mode",
        choices=[AUTO, *DECODE_MODES],
        default=AUTO,
        help="F16 decode; auto: the VAE's sr4k.op4ksr metadata, else aligned for the raw FLUX "
        "ae.safetensors (BFL keys), partitioned for a diffusers-layout F16 VAE",
    )
    mdl.add_argument("--rfr", default="ntk", help="RFR preset of the op4ksr method (op4ksr-norfr: none)")
    mdl.add_argument("--t-star", type=float, default=OneStepConfig().t_star, help="OP4KSR one-step time t*")
    mdl.add_argument("--tile", type=int, default=512, help="gtasr-tiled LR tile (released 512)")
    mdl.add_argument("--overlap", type=int, default=64, help="gtasr-tiled LR overlap (released 64)")
    mdl.add_argument("--device", choices=devices.DEVICES, default="auto", help="default auto: CUDA, MPS, CPU")
    mdl.add_argument(
        "--dtype",
        choices=list(devices.DTYPES),
        default="auto",
        help="model weights/compute dtype; auto: bf16 on GPUs that support it, else fp32",
    )
    mdl.add_argument("--seed", type=int, default=0, help="GTASR noise seed")
    return p


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the ``sr4k`` subparsers; the handler is ``args.run(args)`` (as in cli.main)."""
    p = subparsers.add_parser(
        "bench",
        help="score SR outputs or run methods over a benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(p)
    p.set_defaults(run=run_bench)
    return p


def _check_args(args: argparse.Namespace) -> None:
    folders, dataset = args.hr is not None or args.sr is not None, args.dataset is not None
    if folders == dataset:
        raise SystemExit(
            "sr4k bench: give either --hr DIR --sr DIR, or --dataset DIR --methods LIST --out DIR"
        )
    if folders and (args.hr is None or args.sr is None):
        raise SystemExit("sr4k bench: --hr and --sr go together (HR folder and the SR outputs to score)")
    if dataset and (not args.methods or args.out is None):
        raise SystemExit("sr4k bench --dataset also needs --methods LIST and --out DIR")


def _write(args: argparse.Namespace, payload: dict[str, Any], table: str) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1, allow_nan=True))
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(table)


def _header(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "metrics": list(parse_metrics(args.metrics)),
        "crop_border": args.crop_border,
    }


def bench_folders(args: argparse.Namespace) -> dict[str, Any]:
    """``--hr/--sr``: score one folder of outputs."""
    scorer = Scorer(parse_metrics(args.metrics), args.crop_border, str(devices.resolve_device(args.device)))
    result = score_folders(args.hr, args.sr, scorer)
    payload = {**_header(args), "hr": str(args.hr), "sr": str(args.sr), **result}
    table = (
        f"# sr4k bench: {args.sr} vs {args.hr}\n\n"
        + markdown_table({args.sr.name: result["mean"]}, scorer.applicable(True))
        + not_applicable_notes(  # type: ignore[dict-item]
            {args.sr.name: result}
        )
    )
    _write(args, payload, table)
    return payload


def _run_model_method(method: Method, data: Dataset, models: Models, out: Path, scale: int) -> list[float]:
    seconds = []
    for pair in data.pairs:
        lr = read_image(pair.lr)[None]
        hr_size = image_size(pair.hr) if pair.hr is not None else (lr.shape[-2] * scale, lr.shape[-1] * scale)
        sr, s = timed_run(method, lr, hr_size, models)
        write_image(out / f"{pair.stem}.png", sr[0])
        seconds.append(s)
        log.info("bench %s: %s %.2f s", method.name, pair.stem, s)
    return seconds


def bench_dataset(args: argparse.Namespace) -> dict[str, Any]:
    """``--dataset``: run each method over the dataset, then score every method's outputs."""
    data = load_dataset(args.dataset, args.scale)
    if args.limit is not None:
        data = Dataset(data.name, data.root, data.scale, data.pairs[: args.limit])
    scale = data.scale or args.scale or 4
    methods = parse_methods(args.methods)
    device = devices.resolve_device(args.device)
    dtype = devices.resolve_dtype(args.dtype, device)
    models = Models(
        args.gtasr,
        args.flux,
        args.vae,
        device,
        dtype,
        args.rfr,
        OneStepConfig(t_star=args.t_star),
        args.tile,
        args.overlap,
        args.seed,
        args.decode_mode,
    )
    models.check(methods)
    scorer = Scorer(parse_metrics(args.metrics), args.crop_border, str(device))
    results: dict[str, Any] = {}
    for m in methods:
        folder = output_dir(args.out, m)
        seconds = [] if m.kind == "folder" else _run_model_method(m, data, models, folder, scale)
        if data.has_hr:
            hr = {p.stem: p.hr for p in data.pairs if p.hr is not None}
            items: list[tuple[str, Path, Path | None]] = list(match_outputs(hr, folder))
        else:
            lr = {p.stem: p.lr for p in data.pairs}
            sizes = {s: (h * scale, w * scale) for s, (h, w) in ((s, image_size(f)) for s, f in lr.items())}
            items = [(s, sr, None) for s, sr, _ in match_outputs(lr, folder, sizes)]
        results[m.name] = {
            "kind": m.kind,
            "outputs": str(folder),
            **score_items(items, scorer),
            "seconds_per_image": sum(seconds) / len(seconds) if seconds else None,
        }
    payload = {
        **_header(args),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "dataset": {
            "name": data.name,
            "root": str(data.root),
            "scale": scale,
            "count": len(data),
            "has_hr": data.has_hr,
        },
        "methods": results,
    }
    extra = {
        n: {"s/img": f"{r['seconds_per_image']:.2f}" if r["seconds_per_image"] else "-"}
        for n, r in results.items()
    }
    table = (
        f"# sr4k bench: {data.name} x{scale} ({len(data)} images, {payload['device']}, {payload['dtype']})\n\n"
        + markdown_table({n: r["mean"] for n, r in results.items()}, scorer.applicable(data.has_hr), extra)
        + not_applicable_notes(results)
    )
    _write(args, payload, table)
    return payload


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of the subcommand; returns the exit status."""
    _check_args(args)
    try:
        payload = bench_folders(args) if args.dataset is None else bench_dataset(args)
    except MissingMetricsExtra as err:  # the CLI reports ValueErrors as one-line errors
        raise ValueError(str(err)) from err
    log.info("sr4k bench: wrote %s", args.json)
    return 0 if payload else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m sr4k.cli.bench ...`` (same options as ``sr4k bench``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = add_bench_arguments(
        argparse.ArgumentParser(
            prog="sr4k bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    )
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
