"""Working memory of GTASR 1024² -> 4096² and the F16 VAE 4096² decode, counted on the meta device (issue #11).

Runs the real code with :class:`peak_tracker.PeakTracker` on meta tensors: no GPU, no data, seconds. Compared
with the H200 measurements of benchmarks/perf_toggles.py (RESULTS.md, "Perf toggles", 2026-11-30).

What the meta device cannot run as CUDA does, and how it is handled:
- cuDNN scratch: modelled (:func:`cudnn_nchw_workspace`, fitted to the H200 rows), reported apart.
- SDPA backend: meta decomposes into the math path (q, k, v upcast to fp32, [windows, heads, 64, 64] fp32
  scores). That reproduces the measured GTASR working sets (11.55 at LR 1024, 2.89 at LR 512, to 0.01 GiB);
  the memory-efficient kernel would give 7.4, so the H200 evidently ran the math fallback for the Swin window
  attention. A what-if row counts the efficient kernel.
- The result's host copy (pinned CPU memory) is skipped.
Device-type branches that need nothing: the noise field takes the non-CPU (cached) branch on meta as on CUDA
(its pinned staging copy is host memory); the VAE's fp32 scores are one baddbmm on CUDA, bmm + in-place mul
elsewhere (the same storages); upscale's empty_cache runs only after an OOM.
As in perf_toggles, the timed calls follow a warm-up (the device noise field is cached: "allocated before")
and the previous call's result is alive during the next.

    python benchmarks/peak_memory.py [--lr 1024] [--results OUT.md] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peak_tracker import PeakTracker, Workspace

from sr4k.gtasr_core import GTASRNet, upscale
from sr4k.gtasr_core.config import RELEASED, GTASRConfig
from sr4k.gtasr_core.noise import NoiseKind, clear_noise_cache
from sr4k.gtasr_core.swin import SwinBlock
from sr4k.gtasr_core.unet import UNetBlock
from sr4k.op4ksr_core.vae.config import FLUX_F16, VaeConfig
from sr4k.op4ksr_core.vae.model import F16VAE
from sr4k.srkit import perf

GIB = 2**30
# Work GiB on the H200 at LR 1024 (gtasr_half: LR 512), RESULTS.md perf toggles 2026-11-30.
MEASURED = {"gtasr": 11.55, "gtasr_half": 2.89, "gtasr_whole_head": 25.80, "vae_dec": 8.09}
_SDPA = F.scaled_dot_product_attention
# The module (the package exports a function of the same name).
upscale_mod = importlib.import_module("sr4k.gtasr_core.upscale")


def _efficient_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None, **kw: Any
) -> Any:
    """On meta: the memory-efficient kernel CUDA picks for bf16 with an additive mask (no log-sum-exp without
    autograd); elsewhere unchanged."""
    if q.device.type != "meta" or kw or q.dtype not in (torch.bfloat16, torch.float16):
        return _SDPA(q, k, v, attn_mask=attn_mask, **kw)
    return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, False)[0]


def cudnn_nchw_workspace(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """Model of cuDNN's scratch for a half-precision convolution in NCHW layout: its tensor-core kernels run
    in NHWC, so input and output are transposed into workspace (bytes of both). Fitted to the H200: the
    whole-image head's conv_up2 (6 GiB in, 6 GiB out) costs 12 GiB more in NCHW than in channels_last
    (RESULTS.md perf toggles 2026-11-29: 25.80 vs 13.80 GiB; the storages alone count 13.83)."""
    if func.overloadpacket is not torch.ops.aten.convolution:
        return 0
    x = args[0]
    if x.dtype not in (torch.bfloat16, torch.float16) or x.is_contiguous(memory_format=torch.channels_last):
        return 0
    return x.numel() * x.element_size() + out.numel() * out.element_size()


def _host_copy(image: torch.Tensor, pinned: bool = True) -> torch.Tensor:
    """``to_host`` for meta results: the host buffer (pinned on CUDA) is CPU memory, so not counted."""
    return image if image.device.type == "cpu" else torch.empty(0)


@contextlib.contextmanager
def cuda_like() -> Iterator[None]:
    """Skip the host copy of meta results (the only device-type branch of gtasr_core.upscale on this path)."""
    old = upscale_mod.to_host
    upscale_mod.to_host = _host_copy
    try:
        yield
    finally:
        upscale_mod.to_host = old


@contextlib.contextmanager
def hold_swin_block_h(net: torch.nn.Module) -> Iterator[None]:
    """The liveness of the code the H200 measured: each Swin UNetBlock kept its conv1 output (``h``) until it
    returned, and each SwinBlock its norm1 output through the window attention."""
    held: list[torch.Tensor] = []
    handles = []
    for m in net.modules():
        if isinstance(m, UNetBlock) and m.swin_layer is not None:
            handles.append(m.conv1.register_forward_hook(lambda _m, _a, out: held.append(out)))
            handles.append(m.register_forward_hook(lambda *_: held.clear()))
        if isinstance(m, SwinBlock):
            handles.append(m.norm1.register_forward_hook(lambda _m, _a, out: held.append(out)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def tracked(
    fn: Callable[[], Any],
    device: str,
    root: torch.nn.Module,
    *,
    warmup: int = 1,
    repeats: int = 2,
    workspace: Workspace | None = cudnn_nchw_workspace,
) -> PeakTracker:
    """``fn`` as benchmarks/common.measure runs it: warm-up calls, then ``repeats`` calls under the tracker,
    each result kept until the next call returns."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        with PeakTracker(device, root, workspace=workspace) as t:
            result = None
            for _ in range(repeats):
                result = fn()
            del result
    return t


def gtasr_net(cfg: GTASRConfig, device: str, dtype: torch.dtype) -> GTASRNet:
    """The network with uninitialised weights on meta, seeded random ones elsewhere."""
    if device == "meta":
        with torch.device("meta"):
            return GTASRNet(cfg).to(dtype).eval()
    torch.manual_seed(0)
    return GTASRNet(cfg).to(device=device, dtype=dtype).eval()


def gtasr_peak(
    net: GTASRNet,
    lr_px: int,
    opts: perf.PerfOptions,
    *,
    lr_device: str = "cpu",
    warmup: int = 1,
    workspace: Workspace | None = cudnn_nchw_workspace,
    noise: NoiseKind = "torch",
) -> PeakTracker:
    """Tracker of ``upscale`` (patch-free) of an lr_px² image under ``opts`` on the net's device.

    ``noise``: "torch" by default, the stream of the H200 rows in ``MEASURED`` (perf_parts' network rows keep
    it). When those were measured its field was cached on the device and stayed alive through the network; it is
    now cached on the host, so, like the default "counter" field (whose temporaries, 176 MiB at most, are gone
    before the network starts), its device copy is freed once x_t is made."""
    device = next(net.parameters()).device.type
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0)).to(lr_device)
    clear_noise_cache()
    with perf.options(opts):
        t = tracked(
            lambda: upscale(net, lr, seed=0, allow_tile_fallback=False, noise=noise),
            device,
            net,
            warmup=warmup,
            workspace=workspace,
        )
    clear_noise_cache()
    return t


def vae_model(cfg: VaeConfig, device: str, dtype: torch.dtype) -> F16VAE:
    """The F16 VAE (partitioned decode, as benchmarks/cost_models.build_vae) on ``device``."""
    if device == "meta":
        with torch.device("meta"):
            return F16VAE(cfg, decode_mode="partitioned").to(dtype).eval().requires_grad_(False)
    torch.manual_seed(0)
    return F16VAE(cfg, decode_mode="partitioned").to(device=device, dtype=dtype).eval().requires_grad_(False)


def vae_decode_peak(
    vae: F16VAE,
    px: int,
    opts: perf.PerfOptions,
    warmup: int = 1,
    workspace: Workspace | None = cudnn_nchw_workspace,
) -> PeakTracker:
    """Tracker of ``vae.decode`` of the latent of a px² image."""
    device = next(vae.parameters()).device
    with perf.options(opts), torch.no_grad():
        g = None if device.type == "meta" else torch.Generator(device).manual_seed(0)
        image = torch.rand(1, 3, px, px, device=device, generator=g).to(vae.dtype)
        z = vae.encode(image * 2 - 1)
        del image
        return tracked(lambda: vae.decode(z), device.type, vae, warmup=warmup, workspace=workspace)


def _top_rows(t: PeakTracker, n: int) -> list[str]:
    return [
        f"| {a.nbytes / GIB:.3f} | {'x'.join(map(str, a.shape)) or '-'} | {str(a.dtype)[6:]} | {a.op} | "
        f"{a.path or '-'} |"
        for a in t.top(n, total=True)
    ]


def _commit() -> str:
    try:
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _row(part: str, variant: str, t: PeakTracker, measured: object) -> str:
    measured = f"{measured:.2f}" if isinstance(measured, float) else measured
    return (
        f"| {part} | {variant} | {t.peak_bytes / GIB:.2f} | {t.peak_total / GIB:.2f} | {measured} | "
        f"{t.peak_total_path or '-'} |"
    )


def run(lr_px: int, top: int) -> tuple[dict[str, Any], list[str]]:
    """Count GTASR (as the H200 measured it, with its outputs freed, and as now, at lr_px and lr_px / 2, with the whole head, and
    with the efficient SDPA kernel) and the VAE decode; returns the numbers and the Markdown section."""
    dtype, opts, hr, half = torch.bfloat16, perf.PerfOptions(), 4 * lr_px, lr_px // 2
    net = gtasr_net(RELEASED, "meta", dtype)
    m = {k: v for k, v in MEASURED.items() if lr_px == 1024}  # the H200 rows are at LR 1024 (and 512)
    old = dataclasses.replace(opts, gtasr_attn_windows=0)  # all windows at once, as the H200 ran it
    rows: list[tuple[str, str, str, Callable[[], PeakTracker], object]] = [
        ("gtasr before", f"gtasr {lr_px}² -> {hr}²", "as measured (conv1 and norm1 outputs held, all windows at once)",
         lambda: _held(net, lr_px, old), m.get("gtasr", "-")),
        ("gtasr freed", f"gtasr {lr_px}² -> {hr}²", "outputs freed, all windows at once (gtasr_attn_windows=0)",
         lambda: gtasr_peak(net, lr_px, old), "-"),
        ("gtasr after", f"gtasr {lr_px}² -> {hr}²", f"defaults ({opts.gtasr_attn_windows} windows at a time)",
         lambda: gtasr_peak(net, lr_px, opts), "-"),
        ("gtasr before half", f"gtasr {half}² -> {2 * lr_px}²", "as measured", lambda: _held(net, half, old),
         m.get("gtasr_half", "-")),
        ("gtasr after half", f"gtasr {half}² -> {2 * lr_px}²", "defaults", lambda: gtasr_peak(net, half, opts), "-"),
        ("gtasr whole head", f"gtasr {lr_px}² -> {hr}²", "as measured, head whole (gtasr_head_rows=0)",
         lambda: _held(net, lr_px, dataclasses.replace(old, gtasr_head_rows=0)), m.get("gtasr_whole_head", "-")),
        ("gtasr efficient sdpa", f"gtasr {lr_px}² -> {hr}²", "what-if: defaults, memory-efficient SDPA kernel",
         lambda: _efficient(net, lr_px, opts), "-"),
        ("vae dec", f"vae dec {hr}²", "defaults",
         lambda: vae_decode_peak(vae_model(FLUX_F16, "meta", dtype), hr, opts), m.get("vae_dec", "-")),
    ]  # fmt: skip
    runs: dict[str, PeakTracker] = {}
    table = [
        "| part | variant | storages GiB | work GiB | measured GiB | peak in |",
        "|---|---|---|---|---|---|",
    ]
    with cuda_like():
        for key, part, variant, fn, measured in rows:
            runs[key] = t = fn()
            table.append(_row(part, variant, t, measured))
    res: dict[str, Any] = {"lr_px": lr_px, "torch": torch.__version__, "commit": _commit()}
    res |= {k: {"storages_gib": t.peak_bytes / GIB, "work_gib": t.peak_total / GIB} for k, t in runs.items()}
    lines = [
        f"## Peak memory, meta-device count (issue #11): benchmarks/peak_memory.py ({datetime.date.today()}, "
        f"commit {res['commit']})",
        "",
        f"- meta-device count, not a GPU measurement; torch {torch.__version__}; bf16; real architectures, "
        "uninitialised weights; default perf options unless said; storages rounded to 512 B",
        "- storages = peak of the tensors made by the timed calls (one warm-up, then two calls, the previous "
        "result alive: as perf_toggles measures); work = storages + modelled cuDNN scratch of half-precision NCHW "
        "convolutions (input + output bytes); other scratch and fragmentation are invisible",
        "- measured = H200 work GiB of RESULTS.md perf toggles 2026-11-30, i.e. of the code the 'as measured' rows "
        "simulate (whole head: the '+native GroupNorm' row)",
        f"- Command: `python benchmarks/peak_memory.py --lr {lr_px} --results OUT.md`",
        "",
        *table,
    ]
    for key in ("gtasr before", "gtasr after", "vae dec"):
        lines += [
            "",
            f"Largest storages alive at the peak, {key}:",
            "",
            "| GiB | shape | dtype | op | made in |",
        ]
        lines += ["|---|---|---|---|---|", *_top_rows(runs[key], top)]
    return res, lines


def _held(net: GTASRNet, lr_px: int, opts: perf.PerfOptions) -> PeakTracker:
    with hold_swin_block_h(net):
        return gtasr_peak(net, lr_px, opts)


def _efficient(net: GTASRNet, lr_px: int, opts: perf.PerfOptions) -> PeakTracker:
    old, F.scaled_dot_product_attention = F.scaled_dot_product_attention, _efficient_sdpa
    try:
        return gtasr_peak(net, lr_px, opts)
    finally:
        F.scaled_dot_product_attention = old


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--lr", type=int, default=1024, help="LR side in px (the output is 4x)")
    p.add_argument("--top", type=int, default=8, help="largest live storages listed per run")
    p.add_argument("--results", type=Path, default=None, help="write the Markdown section here")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    res, lines = run(a.lr, a.top)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.results:
        a.results.write_text(text)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
