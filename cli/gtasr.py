"""``sr4k upscale --model gtasr``: the GTASR one-step upscaler on image files, x4 or any ``--scale`` /
``--long-side`` (x4 network passes, then an exact antialiased resize; ``gtasr_core.any_size``).

Weights come from ``--weights`` or, by default, the released ``GTASR_final_phase.pth`` kept in the user
cache (``$SR4K_HOME``, default ``~/.cache/sr4k``), downloaded from the Hugging Face Hub on first use.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from ..gtasr_core import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    DEFAULT_TILE_PLAN,
    TILE_PLANS,
    load_gtasr,
    passes_for,
    upscale,
    upscale_to_size,
)
from ..gtasr_core.compile import compile_gtasr
from ..gtasr_core.noise import DEFAULT_NOISE, NOISE_KINDS
from ..srkit import perf
from ..srkit.download import Progress, download_model, manual_download_message
from ..srkit.model_registry import GTASR_FINAL
from ..srkit.sizing import target_size
from ..srkit.transfer import to_host
from .targets import check_target

__all__ = [
    "TILING",
    "GTASRUpscaler",
    "add_arguments",
    "cache_home",
    "check_args",
    "check_size",
    "released_weights",
]

log = logging.getLogger(__name__)

TILING = ("auto", "off", "force")
NET_SCALE = (
    4  # every GTASR network is x4 (GTASRConfig refuses other scales), so sizes are known before loading
)
PROGRESS_STEP = 0.1  # log the download every 10 %


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="GTASR checkpoint (BasicSR .pth or converted .safetensors). Default: the released "
        f"{GTASR_FINAL.filename}, downloaded once into $SR4K_HOME (default ~/.cache/sr4k)",
    )
    group.add_argument("--seed", type=int, default=0, help="noise seed; same seed, same output (default 0)")
    group.add_argument(
        "--noise",
        choices=NOISE_KINDS,
        default=DEFAULT_NOISE,
        help="noise stream: counter (drawn on the GPU, the same on every device; default) or torch (the CPU "
        "generator that was the default before: reproduces those images, about 0.4 s per new seed at 4K)",
    )
    group.add_argument(
        "--tiling",
        choices=TILING,
        default="auto",
        help="auto: whole image, tiles after an out-of-memory error; off: whole image only; "
        "force: always tiles (default auto)",
    )
    group.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"largest tile side in low-res pixels, a multiple of the network's multiple (default {DEFAULT_TILE})",
    )
    group.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"tile overlap in low-res pixels (default {DEFAULT_OVERLAP})",
    )
    group.add_argument(
        "--tile-plan",
        choices=TILE_PLANS,
        default=DEFAULT_TILE_PLAN,
        help="balanced: the fewest tiles of at most --tile px, each as small as the overlap allows (1024 px: "
        "9 tiles of 384 instead of 512; default); released: tiles of --tile px at the released stride, "
        "which reproduces tiled images made before",
    )
    group.add_argument(
        "--no-download",
        action="store_true",
        help="never download the released weights; fail if they are not cached",
    )
    group.add_argument(
        "--hf-endpoint",
        default=None,
        help="Hugging Face endpoint or mirror for the download (default: $HF_ENDPOINT or huggingface.co)",
    )


def check_args(args: argparse.Namespace) -> None:
    """Refuse option values the upscale would reject, before the weights are loaded or downloaded."""
    check_target(args)
    if args.tiling != "off" and not 0 <= args.overlap < args.tile:
        raise ValueError(
            f"--tile {args.tile} --overlap {args.overlap}: tiles need --tile > 0 and 0 <= --overlap < --tile "
            f"(defaults: --tile {DEFAULT_TILE} --overlap {DEFAULT_OVERLAP}), or --tiling off"
        )


def _target(args: argparse.Namespace, height: int, width: int) -> tuple[int, int]:
    """Output ``(H, W)`` for an input of ``height`` x ``width``: ``--long-side``, else ``--scale`` (default x4)."""
    if args.long_side is not None:
        return target_size(height, width, long_side=args.long_side)
    return target_size(height, width, scale=args.scale if args.scale is not None else NET_SCALE)


def check_size(args: argparse.Namespace, height: int, width: int) -> None:
    """Refuse an input too small for the requested output (beyond GTASR's x64 and a final resize). Called with
    the file's header size, so such a file is passed over before the weights load."""
    passes_for(height, width, _target(args, height, width), NET_SCALE)


def cache_home() -> Path:
    """The CLI's model cache: ``$SR4K_HOME`` or ``~/.cache/sr4k``."""
    return Path(os.environ.get("SR4K_HOME") or Path.home() / ".cache" / "sr4k").expanduser()


def _log_progress(name: str) -> Progress:
    last = [-1.0]

    def report(done: int, total: int | None) -> None:
        if total:
            frac = done / total
            if frac >= last[0] + PROGRESS_STEP or done == total:
                last[0] = frac
                log.info("downloading %s: %3.0f %% of %.1f MB", name, 100 * frac, total / 1e6)

    return report


def released_weights(*, allow_download: bool = True, endpoint: str | None = None) -> Path:
    """Path of the cached released weights, downloading them first if needed and allowed."""
    folder = cache_home() / GTASR_FINAL.folder
    path = folder / GTASR_FINAL.filename
    if path.is_file():
        return path
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    if not allow_download:
        raise FileNotFoundError(
            f"no --weights given and the released weights are not cached at {path} "
            "(--no-download is set). "
            + manual_download_message(GTASR_FINAL.repo_id, GTASR_FINAL.filename, folder, endpoint=endpoint)
        )
    log.info("first use: fetching the released GTASR weights into %s", folder)
    return download_model(
        GTASR_FINAL, folder, endpoint=endpoint, progress=_log_progress(GTASR_FINAL.filename)
    )


class GTASRUpscaler:
    """Loads the network once; ``__call__`` upscales one ``[1, 3|4, H, W]`` image to the target size
    (``--scale``, default 4, or ``--long-side``; alpha resized bicubically)."""

    def __init__(self, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
        check_args(args)
        weights = args.weights or released_weights(
            allow_download=not args.no_download, endpoint=args.hf_endpoint
        )
        if not Path(weights).is_file():
            raise FileNotFoundError(f"--weights {weights} does not exist")
        self.net = load_gtasr(weights, dtype=dtype, device=device)
        self.perf_options: perf.PerfOptions | None = None  # None: the options in force when an image runs
        if getattr(args, "compile", False):
            # run in the layout measured fastest compiled (perf.COMPILED): 0.723 -> 0.415 s at LR 1024 on an H200
            self.perf_options = perf.COMPILED
            compile_gtasr(self.net)
        self.first_call = True
        self.args = args
        log.info("GTASR: %s on %s (%s)", weights, device, dtype)

    def __call__(self, image: Tensor) -> Tensor:
        a = self.args
        progress = lambda done, total: log.debug("  %d/%d", done, total)  # noqa: E731 - a one-line callback
        size = _target(a, *image.shape[-2:])

        def run_pass(x: Tensor, k: int) -> Tensor:
            if k:
                log.info(
                    "  GTASR pass %d: %dx%d -> %dx%d",
                    k + 1,
                    x.shape[-1],
                    x.shape[-2],
                    x.shape[-1] * self.net.scale,
                    x.shape[-2] * self.net.scale,
                )
            return upscale(
                self.net,
                x,
                seed=a.seed,
                tile=a.tile if a.tiling == "force" else None,
                overlap=a.overlap,
                progress=progress,
                allow_tile_fallback=a.tiling == "auto",
                fallback_tile=a.tile,
                noise=getattr(a, "noise", DEFAULT_NOISE),
                tile_plan=getattr(a, "tile_plan", DEFAULT_TILE_PLAN),
            )

        start = time.perf_counter()
        # A resize to the target (any scale but x4) runs on the model's device; the result comes back to the host.
        device = next(self.net.parameters()).device
        with perf.options(self.perf_options):
            out = upscale_to_size(image, size, run_pass, self.net.scale, resize_device=device)
            out = to_host(out, pinned=perf.current().pinned_output)
        if self.first_call and getattr(a, "compile", False):
            log.info(
                "GTASR: first image with torch.compile (compilation included): %.1f s",
                time.perf_counter() - start,
            )
        self.first_call = False
        return out
