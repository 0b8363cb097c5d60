"""The ``sr4k`` command: ``sr4k upscale --model gtasr|op4ksr IN OUT``, ``sr4k convert IN.pth OUT.safetensors``,
``sr4k bench`` and ``sr4k calibrate-tstar``.

Upscalers are rows of :data:`UPSCALERS` (their own flags in an argument group, and a loader that returns
an image -> image callable), so another model is one more row. Logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from ..gtasr_core import convert_to_safetensors
from ..srkit.image_io import icc_profile
from ..srkit.oom import is_oom
from ..srkit.torch_support import CLI_REMEDY, unsupported_torch_message
from . import gtasr, op4ksr
from .bench import add_bench_parser
from .calibrate import add_calibrate_parser
from .devices import DEVICES, DTYPES, resolve_device, resolve_dtype
from .folder import DEFAULT_IO_WORKERS, Job, run_folder
from .images import check_bits, check_sizes, load_image, output_bits, plan_outputs, save_image
from .shard import Rank, device_for, failures_everywhere, rank_from_env, shard, write_atomically
from .signals import sigterm_exits

__all__ = ["UPSCALERS", "UpscalerSpec", "build_parser", "main"]

log = logging.getLogger("sr4k.cli")


@dataclass(frozen=True)
class UpscalerSpec:
    """One ``--model`` choice: its help line, its flags, ``load(args, device, dtype) -> image fn``, and the checks
    run before loading: ``check(args)`` on the option values, ``check_size(args, H, W)`` on each input's size."""

    help: str
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    load: Callable[[argparse.Namespace, torch.device, torch.dtype], Callable[[Tensor], Tensor]]
    check: Callable[[argparse.Namespace], None]
    check_size: Callable[[argparse.Namespace, int, int], None] | None = None


UPSCALERS: dict[str, UpscalerSpec] = {
    "gtasr": UpscalerSpec(
        "GTASR one-step x4 (pixel space, 171.5 M parameters)",
        gtasr.add_arguments,
        gtasr.GTASRUpscaler,
        gtasr.check_args,
        gtasr.check_size,
    ),
    "op4ksr": UpscalerSpec(
        "OP4KSR one-step patch-free 4K on FLUX.1 + F16 VAE (needs --flux and --vae)",
        op4ksr.add_arguments,
        op4ksr.OP4KSRUpscaler,
        op4ksr.check_args,
    ),
}

CONVERT_DTYPES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sr4k", description="Patch-free 4K super-resolution (headless).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log per-tile progress")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "upscale",
        help="upscale an image file or a folder of images",
        description="Upscale IN (a file, or a folder of images) to OUT (a file, or a folder). In a folder, a file "
        "that cannot be read or upscaled is reported and passed over; the run then ends with status 1 and lists "
        "those files. Hidden files (names starting with '.') are not inputs.",
    )
    up.add_argument(
        "--model",
        choices=sorted(UPSCALERS),
        default="gtasr",
        help="; ".join(f"{k}: {v.help}" for k, v in UPSCALERS.items()),
    )
    up.add_argument(
        "--device", choices=DEVICES, default="auto", help="default auto: CUDA, else MPS, else CPU"
    )
    up.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default="auto",
        help="weights/compute dtype; auto: bf16 on GPUs that support it, else fp32",
    )
    up.add_argument("input", type=Path, metavar="IN", help="image file or folder of images")
    up.add_argument(
        "output",
        type=Path,
        metavar="OUT",
        help="output image file, or folder (PNG files named after the inputs). The format follows the suffix: "
        ".jpg is written at quality 95 with full-resolution colour (4:4:4), .webp lossless. The input's EXIF "
        "orientation is applied and its ICC colour profile kept",
    )
    # Output size, for every model: op4ksr defaults to a 4096 px long side, gtasr to x4 (one network pass).
    up.add_argument(
        "--long-side",
        type=int,
        default=None,
        help="output long side in pixels (default: op4ksr 4096; gtasr uses --scale 4 unless given)",
    )
    up.add_argument(
        "--scale",
        type=float,
        default=None,
        help="output/input size ratio instead of --long-side (default: gtasr 4; above 4 gtasr runs x4 "
        "passes, x16 = two, then resizes to the exact size)",
    )
    up.add_argument(
        "--bits",
        type=int,
        choices=(8, 16),
        default=None,
        help="bits per channel of the output (16: PNG/TIFF). Default: 16 for a 16-bit input, else 8",
    )
    up.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave outputs that already exist (resume an interrupted folder run)",
    )
    up.add_argument(
        "--io-workers",
        type=_io_workers,
        default=DEFAULT_IO_WORKERS,
        metavar="N",
        help="threads writing the outputs while the model works on the next image; the next input is read "
        "ahead too (a 4096² PNG takes about 1.7 s of CPU to write, more than the GPU needs to upscale it). "
        f"0: read, upscale and write one after another (default: one per core, at most 4; here {DEFAULT_IO_WORKERS})",
    )
    up.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the repeated blocks (op4ksr: FLUX blocks and the VAE's resnets, 1.10 s per 4K image "
        "on an H200, 0.96 s with --low-vram; gtasr: the UNet blocks, 0.42 s from 1024² to 4096²). The first "
        "image of each size pays the compilation (H200: about 30 s for op4ksr, 90 s for gtasr)",
    )
    for name, spec in UPSCALERS.items():
        spec.add_arguments(up.add_argument_group(f"{name} options"))
    up.set_defaults(run=_upscale)

    conv = sub.add_parser("convert", help="convert a GTASR .pth (BasicSR) checkpoint to .safetensors")
    conv.add_argument("input", type=Path, metavar="IN", help="GTASR checkpoint, e.g. GTASR_final_phase.pth")
    conv.add_argument("output", type=Path, metavar="OUT", help="output .safetensors file")
    conv.add_argument("--key", default="params_ema", help="BasicSR entry to convert (default params_ema)")
    conv.add_argument(
        "--dtype", choices=list(CONVERT_DTYPES), default="keep", help="cast floating tensors (default keep)"
    )
    conv.set_defaults(run=_convert)

    add_bench_parser(sub)  # sr4k bench: metrics and method comparisons (cli/bench.py)
    add_calibrate_parser(sub)  # sr4k calibrate-tstar: OP4KSR's t* for a data set (cli/calibrate.py)
    return parser


def _io_workers(text: str) -> int:
    """``--io-workers``: a whole number >= 0 (argparse reports the error and exits 2)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of threads, 0 or more")
    return n


def _upscale(args: argparse.Namespace) -> int:
    rank = rank_from_env()  # several processes (accelerate launch / torchrun): each takes its share of files
    spec = UPSCALERS[args.model]
    spec.check(args)  # option values, paths and input sizes are checked before a model is loaded
    pairs = plan_outputs(args.input, args.output)
    check_bits(pairs, args.bits)
    mine = shard(pairs, rank)
    todo = [(s, d) for s, d in mine if not (args.skip_existing and d.exists())]
    if rank.world > 1 or len(todo) < len(mine):
        log.info("%s: %d of %d file(s), %d already done", rank, len(mine), len(pairs), len(mine) - len(todo))
    check_size = None if spec.check_size is None else partial(spec.check_size, args)
    ready, failed = check_sizes(todo, check_size)
    if ready:
        with sigterm_exits():  # a SLURM time limit stops the run as Ctrl-C does: no partial files left
            failed += _run(args, spec, rank, ready)
    if failed:
        _log_failures(failed, todo, rank)
    return 1 if failures_everywhere(rank, len(failed)) else 0


def _log_failures(failed: list[tuple[Path, str]], todo: list[tuple[Path, Path]], rank: Rank) -> None:
    """One line: "N of M images failed: a.png (reason), ..." in input order (each was logged when it failed)."""
    order = {src: k for k, (src, _) in enumerate(todo)}
    failed = sorted(failed, key=lambda f: order.get(f[0], len(order)))
    log.error(
        "%d of %d images failed%s: %s",
        len(failed),
        len(todo),
        f" in {rank}" if rank.world > 1 else "",
        ", ".join(f"{src.name} ({reason.removeprefix(str(src)).lstrip(': ')})" for src, reason in failed),
    )


def _run(
    args: argparse.Namespace, spec: UpscalerSpec, rank: Rank, todo: list[tuple[Path, Path]]
) -> list[tuple[Path, str]]:
    """Load the model and upscale ``todo``; returns (input, reason) for each file passed over."""
    device = device_for(resolve_device(args.device), rank)
    model = spec.load(args, device, resolve_dtype(args.dtype, device))
    where = f", {rank}" if rank.world > 1 else ""

    def save(job: Job, image: Tensor, out: Tensor) -> None:
        bits = output_bits(job.src, job.dst, args.bits)
        write_atomically(
            job.dst, lambda path: save_image(out, path, bits=bits, icc_profile=icc_profile(job.src))
        )

    def done(job: Job, image: Tensor, out: Tensor, model_s: float, save_s: float) -> None:
        log.info(
            "[%d/%d%s] %s (%dx%d) -> %s (%dx%d): upscaled in %.2f s, written in %.2f s",
            job.index,
            len(todo),
            where,
            job.src,
            image.shape[-1],
            image.shape[-2],
            job.dst,
            out.shape[-1],
            out.shape[-2],
            model_s,
            save_s,
        )

    def skip(job: Job, err: Exception) -> bool:
        """Pass over a file that cannot be read or upscaled (OSError, ValueError: the pack's image and size
        errors); anything else, out of memory (a RuntimeError) included, stops the run with main's message."""
        if not isinstance(err, (OSError, ValueError)):
            return False
        log.error(
            "[%d/%d%s] %s: failed, going on with the next file: %s", job.index, len(todo), where, job.src, err
        )
        return True

    jobs = [Job(k, src, dst) for k, (src, dst) in enumerate(todo, 1)]
    run = run_folder(jobs, load_image, model, save, io_workers=args.io_workers, done=done, skip=skip)
    if len(jobs) > 1:
        log.info(
            "%d images in %.1f s (%.2f s per image%s)", run.images, run.seconds, run.seconds_per_image, where
        )
    return [(f.job.src, f.reason) for f in run.failed]


def _convert(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise FileNotFoundError(f"input {args.input} does not exist")
    out = convert_to_safetensors(args.input, args.output, key=args.key, dtype=CONVERT_DTYPES[args.dtype])
    log.info("wrote %s", out)
    return 0


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """One stderr handler on the ``sr4k`` logger (idempotent, so in-process calls do not stack handlers)."""
    root = logging.getLogger("sr4k")
    if not any(getattr(h, "_sr4k_cli", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._sr4k_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    log.setLevel(logging.NOTSET)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed, 2 bad arguments or a torch older than supported)."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    too_old = unsupported_torch_message(torch.__version__, CLI_REMEDY)
    if too_old is not None:
        log.error("sr4k: error: %s", too_old)
        return 2
    try:
        status = args.run(args)  # a subcommand may return its exit status (None means success)
    except (OSError, ValueError, RuntimeError) as err:  # includes checkpoint and download errors
        if is_oom(err):  # torch's OOM types, and accelerator errors that report running out of memory
            log.error(
                "sr4k: error: out of memory (%s). Use --tiling force with a smaller --tile (or --tiling auto), "
                "or --dtype bf16/fp16.",
                str(err).splitlines()[0],
            )
        else:
            log.error("sr4k: error: %s", err)
        return 1
    return int(status or 0)
