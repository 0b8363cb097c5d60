"""Full fine-tune export: the FLUX transformer with an OP4KSR LoRA merged in, in BFL/ComfyUI layout, carrying the
LoRA's ``sr4k.op4ksr`` settings, for ``models/diffusion_models`` (OP4KSR Load Model reads the settings from it).

    python -m sr4k.training.op4ksr.export --flux flux1-dev.safetensors --lora runs/op4ksr/op4ksr_lora.safetensors \\
        --out op4ksr_flux.safetensors [--strength 1] [--dtype bfloat16]

Memory: the whole transformer is held once in ``--dtype`` (FLUX.1: ~24 GB in bf16).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from ...op4ksr_core.flux.keys import diffusers_to_bfl
from ...op4ksr_core.flux.loader import load_flux_transformer
from ...op4ksr_core.lora import merge_comfy_lora
from ...op4ksr_core.settings import read_settings, to_metadata
from ...srkit.weights import load_state_dict

log = logging.getLogger(__name__)

__all__ = ["export_merged", "main"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def export_merged(
    flux_path: str | Path,
    lora_path: str | Path,
    out_path: str | Path,
    *,
    strength: float = 1.0,
    dtype: torch.dtype = torch.bfloat16,
    axes_dims_rope: tuple[int, int, int] | None = None,
) -> Path:
    """Merge ``lora_path`` into ``flux_path`` (``W += strength * alpha / r * B @ A``) and save BFL keys with the
    LoRA's settings. ValueError if the LoRA carries none (export it with the sr4k trainer)."""
    for what, path in (("FLUX transformer", flux_path), ("LoRA", lora_path)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
    settings = read_settings(lora_path)
    if settings is None:
        raise ValueError(
            f"{lora_path} carries no sr4k.op4ksr settings; export the LoRA with the sr4k trainer "
            "(python -m sr4k.training.op4ksr) so the fine-tune can carry them"
        )
    transformer = load_flux_transformer(
        load_state_dict(flux_path), dtype=dtype, axes_dims_rope=axes_dims_rope
    )
    merged = merge_comfy_lora(transformer, lora_path, strength)
    sd = {k: v.detach().to(dtype).contiguous() for k, v in diffusers_to_bfl(transformer.state_dict()).items()}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out), metadata={"sr4k": "op4ksr", **to_metadata(settings)})
    log.info("merged %d LoRA modules into %s -> %s (%s)", merged, flux_path, out, settings.known())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sr4k.training.op4ksr.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--flux", required=True, help="base FLUX.1 transformer (BFL or diffusers keys)")
    parser.add_argument("--lora", required=True, help="OP4KSR LoRA exported by the trainer")
    parser.add_argument("--out", required=True, help="output .safetensors (BFL/ComfyUI layout)")
    parser.add_argument("--strength", type=float, default=1.0, help="LoRA strength (default 1)")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="bfloat16", help="weights dtype (default bfloat16)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        export_merged(args.flux, args.lora, args.out, strength=args.strength, dtype=DTYPES[args.dtype])
    except (OSError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
