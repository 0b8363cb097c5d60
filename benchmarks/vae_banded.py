"""Benchmark the F16 VAE's exact row-band tiling (OP4KSR ``vae_tiling``) against the untiled encode/decode.

Real-size F16 VAE with random weights, one square image of --side pixels. For encode and for each decode mode:
the largest relative difference banded vs untiled, wall time, and peak memory of each path (CUDA:
``torch.cuda.max_memory_allocated`` over the call; CPU: peak RSS growth, an upper bound). Full maps of the
banded path live on the CPU (as ComfyUI's intermediate device), so on CUDA its device peak is one band per
layer plus the latent-size mid block.

    python benchmarks/vae_banded.py                    # CUDA if available (2048 px), else CPU (256 px)
    python benchmarks/vae_banded.py --device cpu --side 128 --dtype float32
"""

from __future__ import annotations

import argparse
import time

import torch
from common import GIB, append_results, environment, markdown_table, peak_memory, sync

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.banded import Bands, decode_banded, encode_banded

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def random_vae(device: torch.device, dtype: torch.dtype) -> F16VAE:
    """The real-size F16 VAE with seeded weights scaled like a trained network's (unit-gain convs)."""
    vae = F16VAE().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, p in vae.state_dict().items():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim > 1:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(1 + 0.05 * noise if key.endswith("weight") else 0.05 * noise)
    return vae.to(device, dtype)


def timed(fn, device: torch.device) -> tuple[torch.Tensor, float, float]:  # noqa: ANN001
    with peak_memory(device) as mem:
        start = time.perf_counter()
        out = fn()
        sync(device)
        wall = time.perf_counter() - start
    return out, wall, mem["growth_bytes"] / GIB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--side", type=int, default=None, help="image side in px (2048 on CUDA, 256 on CPU)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    args = parser.parse_args()
    device = torch.device(args.device)
    side = args.side or (2048 if device.type == "cuda" else 256)
    vae = random_vae(device, DTYPES[args.dtype])
    bands = Bands(device, torch.device("cpu"))
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1
    latent = torch.randn(1, 16, side // 16, side // 16, generator=torch.Generator().manual_seed(2)).to(device)
    runs = {"encode": (lambda: vae.encode(image), lambda: encode_banded(vae, image, bands))}
    for mode in ("aligned", "partitioned"):
        runs[f"decode {mode}"] = (
            lambda m=mode: vae.decode(latent, decode_mode=m),
            lambda m=mode: decode_banded(vae, latent, bands, m),
        )
    rows = []
    with torch.no_grad():
        for name, (untiled, banded) in runs.items():
            ref, t_ref, m_ref = timed(untiled, device)
            out, t_out, m_out = timed(banded, device)
            ref, out = ref.float().cpu(), out.float().cpu()
            rel = float((out - ref).abs().max() / ref.abs().max())
            rows.append([name, f"{rel:.1e}", f"{t_ref:.2f}", f"{t_out:.2f}", f"{m_ref:.2f}", f"{m_out:.2f}"])
            print(rows[-1], flush=True)
    env = environment(device)
    text = (
        f"## F16 VAE row-band tiling vs untiled ({side}x{side}, {args.dtype})\n\n"
        f"{env['device']}; torch {env['torch']}, CUDA {env['cuda']}; {env['date']}. "
        "`python benchmarks/vae_banded.py`. Peak memory: growth over the call (CUDA: allocated tensors; "
        "CPU: RSS, upper bound).\n\n"
        + markdown_table(
            ["step", "max rel. diff", "untiled s", "banded s", "untiled peak GiB", "banded peak GiB"], rows
        )
    )
    append_results(text)
    print(text)


if __name__ == "__main__":
    main()
