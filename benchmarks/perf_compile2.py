"""The ``compile2`` part of ``perf_toggles.py``: regional torch.compile of the F16 VAE and GTASR, and the whole
OP4KSR pipeline compiled (FLUX blocks + VAE), with fp8 row-wise and ``--low-vram`` under compile.

Every compiled row is measured against the eager defaults (``srkit.perf.PerfOptions()``) of the same part, in
the same process, on the same weights; the first call of each compiled variant (compilation included) is
timed separately into ``c.extra`` (``*_first_call_s``), with Dynamo's graph count (``*_graphs``). Steps run in
order of interest and each is skipped (``skipped_compile2_<step>`` in ``c.extra``) once ``deadline`` has
passed, so the part fits the caller's budget; compilation cannot be interrupted, so a step may overrun it.

On the CPU (``--smoke``) the backend is ``aot_eager`` (Dynamo + AOTAutograd tracing, no code generation):
Inductor's C++ code generation for the real-width VAE would take minutes there, and the smoke run checks the
wiring, not the speed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
from common import sync
from cost import build_flux, build_vae, random_init_
from perf_parts import OPT, Ctx, _e2e, free
from torch._dynamo.utils import counters

from sr4k.gtasr_core import GTASRNet, upscale
from sr4k.gtasr_core.compile import compile_gtasr
from sr4k.gtasr_core.noise import set_layout
from sr4k.op4ksr_core.flux.compile import compile_blocks
from sr4k.op4ksr_core.flux.const_modulation import freeze_modulation
from sr4k.op4ksr_core.flux.fp8_linear import FP8Linear, fp8_linears
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.vae.compile import compile_vae
from sr4k.op4ksr_core.vae.model import set_vae_layout
from sr4k.srkit import perf

VAE_CL = dataclasses.replace(OPT, vae_channels_last=True)
GTASR_CL = dataclasses.replace(OPT, gtasr_channels_last=True)


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def _first_call(c: Ctx, key: str, fn: Callable[[], Any], opts: perf.PerfOptions) -> None:
    """Time the first (compiling) call of a variant into ``c.extra[key + "_first_call_s"]`` and the graphs
    it added into ``c.extra[key + "_graphs"]``."""
    before, t = _graphs(), time.perf_counter()
    with perf.options(opts), torch.no_grad():
        fn()
    sync(c.device)
    c.extra[f"{key}_first_call_s"] = time.perf_counter() - t
    c.extra[f"{key}_graphs"] = _graphs() - before


@contextlib.contextmanager
def _warm(c: Ctx) -> Iterator[None]:
    """Rows measured right after their timed first call: no further warm-up call (saves ~20 s on the GPU)."""
    old, c.warmup = c.warmup, 0
    try:
        yield
    finally:
        c.warmup = old


def _attempt(c: Ctx, step: str, fn: Callable[[], Any]) -> bool:
    """Run one step; an exception is recorded (``error_compile2_<step>``) and printed, and the part goes on
    with its other steps (one GPU run has to bring back as much as it can)."""
    try:
        fn()
    except Exception as e:
        c.extra[f"error_compile2_{step}"] = f"{type(e).__name__}: {str(e)[:200]}"
        traceback.print_exc()
        return False
    return True


def _due(c: Ctx, deadline: float, step: str) -> bool:
    """False (and the skip recorded) once the part's deadline has passed."""
    if time.perf_counter() < deadline:
        return True
    c.extra[f"skipped_compile2_{step}"] = "budget"
    return False


def _vae(c: Ctx, px: int, backend: str, deadline: float) -> None:
    vae = build_vae(c.device, c.dtype)
    image = torch.rand(1, 3, px, px, device=c.device, generator=torch.Generator(c.device).manual_seed(0))
    image = (image * 2 - 1).to(c.dtype)
    set_vae_layout(vae, False)
    z = c.run("vae enc", f"{px}² defaults (eager)", lambda: vae.encode(image), OPT)
    ref = c.run("vae dec", f"{px}² defaults (eager)", lambda: vae.decode(z), OPT)
    compile_vae(vae, backend=backend)
    for step, label, opts in (
        ("vae", "compiled", OPT),
        ("vae_cl", "compiled + channels_last", VAE_CL),
    ):
        if not _due(c, deadline, step):
            break

        def measure(step: str = step, label: str = label, opts: perf.PerfOptions = opts) -> None:
            set_vae_layout(vae, opts.vae_channels_last)
            _first_call(c, step, lambda: vae.decode(vae.encode(image)), opts)
            with _warm(c):
                c.run("vae enc", f"{px}² {label}", lambda: vae.encode(image), opts, z)
                c.run("vae dec", f"{px}² {label}", lambda: vae.decode(z), opts, ref)

        _attempt(c, step, measure)
    set_vae_layout(vae, False)


def _gtasr(c: Ctx, cfg: Any, lr_px: int, backend: str, deadline: float) -> None:
    net = random_init_(GTASRNet(cfg).to(device=c.device, dtype=c.dtype)).eval()
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    run = lambda: upscale(net, lr, seed=0, allow_tile_fallback=False)  # noqa: E731 - the measured call
    ref = c.run("gtasr", "defaults (eager)", run, OPT)
    compile_gtasr(net, backend=backend)
    for step, label, opts in (
        ("gtasr", "compiled", OPT),
        ("gtasr_cl", "compiled + channels_last", GTASR_CL),
    ):
        if not _due(c, deadline, step):
            break

        def measure(step: str = step, label: str = label, opts: perf.PerfOptions = opts) -> None:
            _first_call(c, step, run, opts)
            with _warm(c):
                c.run("gtasr", label, run, opts, ref)

        _attempt(c, step, measure)
        set_layout(net, False)


def _op4ksr(c: Ctx, flux_cfg: dict[str, Any], lr_px: int, out_px: int, backend: str, deadline: float) -> None:
    flux, vae = build_flux(flux_cfg, c.device, c.dtype), build_vae(c.device, c.dtype)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    run = lambda: upscale_image(flux, vae, lr, long_side=out_px)  # noqa: E731 - the measured call
    ref = _e2e(c, "defaults (eager, for compile2)", flux, vae, lr, out_px, OPT, None, bench=False)
    if not _due(c, deadline, "e2e"):
        return
    compile_blocks(flux, backend=backend)
    # The VAE graphs of _vae (same block shapes, same layout) are reused: this first call compiles FLUX only.
    compile_vae(vae, backend=backend)
    _first_call(c, "e2e", run, OPT)
    with _warm(c):
        _e2e(c, "compiled: FLUX blocks + VAE", flux, vae, lr, out_px, OPT, ref, bench=False)
    if not _due(c, deadline, "e2e_fp8_rowwise"):
        return
    t = time.perf_counter()
    c.extra["fp8_linears"] = fp8_linears(flux, "rowwise")  # inside the compiled blocks: they recompile
    free()
    c.extra["fp8_convert_s"] = time.perf_counter() - t

    def rowwise() -> None:
        _first_call(c, "e2e_fp8_rowwise", run, OPT)
        with _warm(c):
            _e2e(c, "compiled + fp8 rowwise", flux, vae, lr, out_px, OPT, ref, bench=False)

    _attempt(c, "e2e_fp8_rowwise", rowwise)  # on failure, --low-vram (weight-only) is still measured
    if not _due(c, deadline, "e2e_low_vram"):
        return
    # --low-vram: constant modulation (recorded from an eager small upscale, as the CLI does before it
    # compiles) and fp8 weight-only.
    with torch.compiler.set_stance("force_eager"):
        freeze_modulation(flux, lambda: upscale_image(flux, vae, lr[..., :64, :64], scale=4))
    for m in flux.modules():
        if isinstance(m, FP8Linear):
            m.mode = "weight_only"
    free()
    _first_call(c, "e2e_low_vram", run, OPT)
    with _warm(c):
        _e2e(c, "--low-vram + compiled (FLUX blocks + VAE)", flux, vae, lr, out_px, OPT, ref, bench=False)


def _vae_static(c: Ctx, px: int, backend: str, deadline: float) -> None:
    """Last: ``dynamic=False`` (one static graph per block shape) against the default ``dynamic=None``, whose
    first forward already turns the blocks' sizes symbolic (the same block class sees several shapes)."""
    if not _due(c, deadline, "vae_static"):
        return
    torch._dynamo.reset()
    vae = build_vae(c.device, c.dtype)
    image = torch.rand(1, 3, px, px, device=c.device, generator=torch.Generator(c.device).manual_seed(0))
    image = (image * 2 - 1).to(c.dtype)
    z = c.run("vae enc", f"{px}² defaults (eager, for static)", lambda: vae.encode(image), OPT)
    ref = c.run("vae dec", f"{px}² defaults (eager, for static)", lambda: vae.decode(z), OPT)
    compile_vae(vae, backend=backend, dynamic=False)
    _first_call(c, "vae_static", lambda: vae.decode(vae.encode(image)), OPT)
    with _warm(c):
        c.run("vae enc", f"{px}² compiled, dynamic=False", lambda: vae.encode(image), OPT, z)
        c.run("vae dec", f"{px}² compiled, dynamic=False", lambda: vae.decode(z), OPT, ref)


def part_compile2(
    c: Ctx,
    flux_cfg: dict[str, Any],
    gtasr_cfg: Any,
    *,
    vae_px: int,
    gtasr_lr_px: int,
    lr_px: int,
    out_px: int,
    deadline: float,
) -> None:
    """VAE encode/decode at ``vae_px``, GTASR at LR ``gtasr_lr_px``, OP4KSR ``lr_px`` -> ``out_px``: eager
    defaults, compiled, compiled + channels_last; OP4KSR all compiled, + fp8 row-wise, ``--low-vram``; last,
    the VAE compiled with static shapes."""
    backend = "inductor" if c.device.type == "cuda" else "aot_eager"
    c.extra["compile2_backend"] = backend
    torch._dynamo.reset()
    _attempt(c, "vae_part", lambda: _vae(c, vae_px, backend, deadline))
    free()
    if _due(c, deadline, "gtasr_part"):
        _attempt(c, "gtasr_part", lambda: _gtasr(c, gtasr_cfg, gtasr_lr_px, backend, deadline))
        free()
    if _due(c, deadline, "op4ksr_part"):
        _attempt(c, "op4ksr_part", lambda: _op4ksr(c, flux_cfg, lr_px, out_px, backend, deadline))
        free()
    _attempt(c, "vae_static", lambda: _vae_static(c, vae_px, backend, deadline))
