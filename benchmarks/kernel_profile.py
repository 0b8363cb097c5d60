"""Which GPU kernels the GTASR upscale and the F16 VAE spend their time in, by kernel class (issue #11).

``roofline_gpu.py`` times each aten op; a convolution's time there includes the layout transforms cuDNN runs
inside it (NCHW <-> NHWC for its tensor-core kernels), and a channels_last GroupNorm's includes its NCHW copy.
This script profiles one call of each pipeline with ``torch.profiler`` and sums the device time of every CUDA
kernel by name, then by class (convolution, layout transform, group norm, elementwise, copy, ...), for this
version's defaults (NCHW) and the channels_last variants with and without the layout-keeping GroupNorm
(``perf.nhwc_group_norm``): the table says where channels_last loses or gains, kernel by kernel.

    python benchmarks/kernel_profile.py --json OUT/kernels.json --results OUT/RESULTS_kernels.md  # < 1 min, H200
    python benchmarks/kernel_profile.py --smoke --device cpu --no-write   # tests: aten ops' CPU time instead

Off CUDA there are no kernels: the CPU run classifies aten ops by their self CPU time (a smoke test of the
script, not a measurement of anything the GPU does).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from common import add_output_arguments, environment, markdown_table, publish, sync
from cost_models import build_vae, random_init_
from cost_plans import SMOKE_GTASR
from perf_parts import LEAN, OPT
from roofline import commit

from sr4k.gtasr_core import RELEASED, GTASRNet, upscale
from sr4k.gtasr_core.noise import set_layout
from sr4k.op4ksr_core.vae.model import set_vae_layout
from sr4k.srkit import perf

# First match wins: layout transforms before convolutions (cuDNN names them nchwToNhwc...), norms before
# reductions, copies before the generic elementwise kernels.
KERNEL_CLASSES: tuple[tuple[str, str], ...] = (
    ("layout transform", r"nchwToNhwc|nhwcToNchw|nchw2nhwc|nhwc2nchw|[Tt]ranspose|permute|convertTensor"),
    ("group norm", r"group_?norm|GroupNorm|RowwiseMoments|ComputeFusedParams|GroupNormKernel"),
    ("convolution", r"conv|implicit_gemm|fprop|winograd|cudnn"),
    ("attention", r"flash|fmha|attention|_efficient_attention|softmax"),
    ("gemm", r"gemm|nvjet|cublas|xmma|cutlass|addmm|\bmm\b|bmm"),
    ("copy / cast", r"copy|Copy|Memcpy|Memset|cat|CatArray|_to_copy|fill"),
    ("upsample / pool", r"upsample|interpolate|pool|pixel_(un)?shuffle|im2col"),
    ("reduction", r"reduce|Reduce|sum|norm|mean|var"),
    ("elementwise", r"elementwise|vectorized|unrolled|silu|leaky|add|mul|div|sub|clamp|where"),
)
_PATTERNS = [(name, re.compile(rx)) for name, rx in KERNEL_CLASSES]


def classify(name: str) -> str:
    """The class of a CUDA kernel or aten op name ('other' when no pattern matches)."""
    return next((cls for cls, rx in _PATTERNS if rx.search(name)), "other")


def short(name: str, width: int = 96) -> str:
    """A kernel name without template arguments, cut to ``width`` characters."""
    depth, out = 0, []
    for ch in name:
        depth += ch == "<"
        if depth == 0:
            out.append(ch)
        depth -= ch == ">" and depth > 0
    s = re.sub(r"\s+", " ", "".join(out)).strip()
    return s if len(s) <= width else s[: width - 1] + "…"


@dataclasses.dataclass
class Profile:
    wall_s: float
    kernels: dict[str, tuple[int, float]]  # name -> (calls, device seconds)

    def by_class(self) -> dict[str, float]:
        acc: dict[str, float] = defaultdict(float)
        for name, (_, sec) in self.kernels.items():
            acc[classify(name)] += sec
        return dict(acc)

    @property
    def device_s(self) -> float:
        return sum(sec for _, sec in self.kernels.values())


def profile_call(fn: Callable[[], Any], device: torch.device) -> Profile:
    """Warm up once, then profile one call: every CUDA kernel's time (aten ops' self CPU time off CUDA)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn()
        sync(device)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            start = time.perf_counter()
            fn()
            sync(device)
            wall = time.perf_counter() - start
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    if device.type == "cuda":
        for evt in prof.events():
            if evt.device_type == torch.autograd.DeviceType.CUDA:
                acc[evt.name][0] += 1
                acc[evt.name][1] += evt.time_range.elapsed_us() * 1e-6
    else:
        for avg in prof.key_averages():
            if avg.key.startswith("aten::") and avg.self_cpu_time_total > 0:
                acc[avg.key] = [avg.count, avg.self_cpu_time_total * 1e-6]
    return Profile(wall, {k: (int(n), s) for k, (n, s) in acc.items()})


VARIANTS: dict[str, perf.PerfOptions] = {
    "defaults (NCHW)": OPT,
    "channels_last + NHWC GroupNorm": LEAN,
    "channels_last, native GroupNorm": dataclasses.replace(LEAN, nhwc_group_norm="off"),
}


def run_all(smoke: bool, device: torch.device, parts: str) -> dict[str, Profile]:
    """Profile the GTASR upscale and the VAE encode / decode under every variant: {'net | variant': profile}."""
    dtype = torch.float32 if smoke else torch.bfloat16
    lr_px, vae_px = (32, 128) if smoke else (1024, 4096)
    torch.backends.cudnn.benchmark = True
    out: dict[str, Profile] = {}
    if "gtasr" in parts:
        net = random_init_(GTASRNet(SMOKE_GTASR if smoke else RELEASED).to(device=device, dtype=dtype)).eval()
        lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
        for label, opts in VARIANTS.items():
            with perf.options(opts):
                out[f"GTASR {lr_px}² -> {lr_px * 4}² | {label}"] = profile_call(
                    lambda: upscale(net, lr, seed=0, allow_tile_fallback=False), device
                )
            set_layout(net, False)
        del net
    if "vae" in parts:
        vae = build_vae(device, dtype)
        image = (torch.rand(1, 3, vae_px, vae_px, device=device) * 2 - 1).to(dtype)
        for label, opts in VARIANTS.items():
            set_vae_layout(vae, opts.vae_channels_last)
            x = image.contiguous(memory_format=torch.channels_last) if opts.vae_channels_last else image
            with perf.options(opts):
                out[f"VAE encode {vae_px}² | {label}"] = profile_call(lambda x=x: vae.encode(x), device)
                with torch.no_grad():
                    z = vae.encode(x)
                out[f"VAE decode {vae_px}² | {label}"] = profile_call(lambda z=z: vae.decode(z), device)
        set_vae_layout(vae, False)
    return out


def class_table(runs: dict[str, Profile]) -> tuple[list[str], list[list[str]]]:
    classes = [name for name, _ in KERNEL_CLASSES] + ["other"]
    rows = []
    for key, p in runs.items():
        net, variant = key.split(" | ")
        by = p.by_class()
        rows.append([net, variant, f"{p.wall_s * 1e3:.1f}", f"{p.device_s * 1e3:.1f}"])
        rows[-1] += [f"{by.get(c, 0.0) * 1e3:.1f}" for c in classes]
    return ["pipeline", "variant", "wall ms", "kernels ms", *classes], rows


def top_table(runs: dict[str, Profile], top: int) -> tuple[list[str], list[list[str]]]:
    rows = []
    for key, p in runs.items():
        total = max(p.device_s, 1e-12)
        for name, (calls, sec) in sorted(p.kernels.items(), key=lambda kv: -kv[1][1])[:top]:
            rows.append(
                [key, classify(name), short(name), str(calls), f"{sec * 1e3:.1f}", f"{sec / total:.0%}"]
            )
    return ["pipeline | variant", "class", "kernel", "calls", "ms", "share"], rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny GTASR at LR 32 and the VAE at 128², float32")
    p.add_argument("--parts", default="gtasr,vae", help="comma-separated: gtasr, vae")
    p.add_argument("--top", type=int, default=8, help="kernels listed per pipeline and variant")
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    runs = run_all(args.smoke, device, args.parts)
    env = environment(device)
    what = "CUDA kernels (device time)" if device.type == "cuda" else "aten ops (self CPU time; no kernels)"
    text = "\n".join(
        [
            f"## Kernel classes, NCHW vs channels_last (issue #11): benchmarks/kernel_profile.py "
            f"({env['date']}, commit {args.commit or commit()})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); random weights; one profiled "
            f"call after one warm-up; cudnn.benchmark on; summed: {what}",
            "",
            markdown_table(*class_table(runs)),
            "Largest kernels:",
            "",
            markdown_table(*top_table(runs, args.top)),
        ]
    )
    out = {
        key: {"wall_s": p.wall_s, "kernels": p.kernels, "classes": p.by_class()} for key, p in runs.items()
    }
    publish(text, out, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "runs": out}


if __name__ == "__main__":
    main()
