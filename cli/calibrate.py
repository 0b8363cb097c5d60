"""``sr4k calibrate-tstar``: the OP4KSR flow time t* for a data set, from the F16 VAE's latents (closed form).

    sr4k calibrate-tstar --vae ae.safetensors --hr data/hr [--lr data/lr] [--scale 4] [--json tstar.json]

For each HR image: z_HR = F16 latent of HR; z_LR = F16 latent of its LR bicubic-upsampled back to the HR size
(LR from ``--lr``, same file names; else HR downscaled by ``--scale`` with antialiased bicubic). Then
t* = sqrt(mean((z_LR - z_HR)^2) / (1 + mean(z_HR^2))) over all latent values, clamped to [0.05, 0.95]
(``op4ksr_core.tstar``). Prints and writes ``{"t_star": ..., "images": N, ...}``; put the value in the
training config (``t_star``) so the LoRA and its metadata carry it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..op4ksr_core.onestep import upsample_bicubic
from ..op4ksr_core.settings import AUTO
from ..op4ksr_core.tstar import calibrate_tstar
from ..op4ksr_core.vae import F16VAE
from ..op4ksr_core.vae.config import DECODE_MODES
from ..op4ksr_core.vae.loader import load_f16_vae
from ..srkit.image_io import IMAGE_SUFFIXES, read_image
from .devices import DEVICES, DTYPES, resolve_device, resolve_dtype

log = logging.getLogger(__name__)


def add_calibrate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``calibrate-tstar`` on the ``sr4k`` subparsers (handler ``args.run``)."""
    p = subparsers.add_parser(
        "calibrate-tstar",
        help="compute OP4KSR's t* for a data set (closed form)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--vae", type=Path, required=True, help="FLUX VAE weights used as the F16 VAE")
    p.add_argument("--hr", type=Path, required=True, help="folder of HR images")
    p.add_argument(
        "--lr", type=Path, default=None, help="folder of LR images with the HR file names (optional)"
    )
    p.add_argument("--scale", type=int, default=4, help="HR/LR size ratio (default 4)")
    p.add_argument(
        "--decode-mode",
        choices=[AUTO, *DECODE_MODES],
        default=AUTO,
        help="recorded with the result for the training config (encoding does not depend on it)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default auto: CUDA, else MPS, else CPU")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="VAE dtype (default fp32)")
    p.set_defaults(run=run_calibrate)
    return p


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def image_pair(
    hr: torch.Tensor, lr: torch.Tensor | None, scale: int, multiple: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr_up, hr)`` ``[1, 3, H', W']`` in [0, 1]: HR cropped (top-left) to a multiple of ``multiple``, LR
    (given, or HR downscaled by ``scale``, antialiased bicubic) bicubic-upsampled to HR's full size first."""
    h, w = hr.shape[-2:]
    if lr is None:
        lr = F.interpolate(
            hr,
            size=(max(1, h // scale), max(1, w // scale)),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
    lr_up = upsample_bicubic(lr, (h, w))
    hh, ww = h - h % multiple, w - w % multiple
    if hh == 0 or ww == 0:
        raise ValueError(f"image {w}x{h} is smaller than the VAE's {multiple}-px latent cell")
    return lr_up[..., :hh, :ww], hr[..., :hh, :ww]


def latent_pairs(
    vae: F16VAE, hr_files: list[Path], lr_dir: Path | None, scale: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(z_LR, z_HR)`` model-space latents (posterior means) per HR file."""
    for path in hr_files:
        hr = read_image(path)[None]
        lr = None
        if lr_dir is not None:
            match = [p for p in _images(lr_dir) if p.stem == path.stem]
            if not match:
                raise FileNotFoundError(f"no LR image named {path.stem}.* in {lr_dir} for {path}")
            lr = read_image(match[0])[None]
        lr_up, hr = image_pair(hr, lr, scale, vae.downscale)
        with torch.no_grad():
            z = [
                vae.to_model_latent(vae.encode((x * 2 - 1).to(vae.device, vae.dtype)).float())
                for x in (lr_up, hr)
            ]
        log.info("%s: latent %s", path.name, tuple(z[1].shape))
        yield z[0], z[1]


def run_calibrate(args: argparse.Namespace) -> int:
    if args.scale < 1:
        raise ValueError(f"--scale must be >= 1, got {args.scale}")
    files = _images(args.hr)
    device = resolve_device(args.device)
    # decode_mode auto resolves in the loader (the file's metadata, else its key layout)
    vae = load_f16_vae(args.vae, args.decode_mode, dtype=resolve_dtype(args.dtype, device), device=device)
    mode = vae.decode_mode
    stats = calibrate_tstar(latent_pairs(vae, files, args.lr, args.scale))
    result = {**stats.as_dict(), "decode_mode": mode, "scale": args.scale, "vae": str(args.vae)}
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if stats.t_star != stats.t_star_unclamped:
        log.warning("t* %.4f is outside [0.05, 0.95]; clamped to %.2f", stats.t_star_unclamped, stats.t_star)
    return 0
