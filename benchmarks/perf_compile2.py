"""The ``compile2`` part of ``perf_toggles.py``: regional torch.compile of the F16 VAE and GTASR, and the whole
OP4KSR pipeline compiled (FLUX blocks + VAE), with fp8 row-wise and ``--low-vram`` under compile.

Every compiled row is measured against the eager defaults (``srkit.perf.PerfOptions()``) of the same model, in
the same process, on the same weights and inputs; the first call of each compiled variant (compilation
included) is timed separately into ``c.extra`` (``<step>_first_call_s``), with the graphs Dynamo compiled for
it (``<step>_graphs``).

Steps run in order of interest: VAE compiled, GTASR compiled, OP4KSR compiled, + --low-vram (fp8 weight-only
and constant modulation), the same with fp8 row-wise, then GTASR and VAE with channels_last, then the VAE with
static shapes. A step starts only if its estimated GPU time
(:data:`NEED`, cold compile caches) fits before the deadline, else it is recorded as ``skipped_compile2_<step>``;
a failing step is recorded as ``error_compile2_<step>`` and the others still run. After every step the caller's
``checkpoint`` runs (perf_toggles writes its JSON), so a run killed by an outer timeout keeps what it measured.

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

# Estimated H200 seconds per step with cold caches (compilation + 2 timed calls). Guesses from the FLUX blocks'
# 18 s first call and the graph counts (VAE ~10-11 block graphs, released GTASR 15, FLUX 2 per variant).
NEED = {
    "vae": 30,
    "gtasr": 60,
    "op4ksr": 75,  # FLUX.1-dev build, eager reference rows, and the compiled row ("e2e") after them
    "e2e": 45,
    "e2e_low_vram": 35,
    "e2e_fp8_rowwise": 30,
    "gtasr_cl": 60,
    "vae_cl": 30,
    "vae_static": 35,
}


@dataclasses.dataclass
class Steps:
    """Deadline, failure and checkpoint bookkeeping of the part's steps."""

    c: Ctx
    deadline: float
    checkpoint: Callable[[], None]

    def due(self, step: str) -> bool:
        """True if ``step`` is expected to end before the deadline; else the skip is recorded."""
        if time.perf_counter() + NEED.get(step, 0) <= self.deadline:
            return True
        self.c.extra[f"skipped_compile2_{step}"] = "budget"
        return False

    def run(self, step: str, fn: Callable[[], Any]) -> bool:
        """Run ``step`` if due; an exception is recorded and printed and the part goes on. Checkpoints after."""
        if not self.due(step):
            return False
        try:
            fn()
        except Exception as e:
            self.c.extra[f"error_compile2_{step}"] = f"{type(e).__name__}: {str(e)[:200]}"
            traceback.print_exc()
            return False
        finally:
            self.checkpoint()
        return True


def _graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def _first_call(c: Ctx, key: str, fn: Callable[[], Any], opts: perf.PerfOptions) -> None:
    """Time the first (compiling) call of a variant into ``c.extra``, with the graphs it added."""
    before, t = _graphs(), time.perf_counter()
    with perf.options(opts), torch.no_grad():
        fn()
    sync(c.device)
    c.extra[f"{key}_first_call_s"] = time.perf_counter() - t
    c.extra[f"{key}_graphs"] = _graphs() - before


@contextlib.contextmanager
def _warm(c: Ctx) -> Iterator[None]:
    """Rows measured right after their timed first call: no further warm-up call."""
    old, c.warmup = c.warmup, 0
    try:
        yield
    finally:
        c.warmup = old


@dataclasses.dataclass
class VaeBench:
    """One real-size F16 VAE, its input and its eager-defaults outputs (the references of every VAE row)."""

    c: Ctx
    px: int
    vae: Any
    image: torch.Tensor
    z: torch.Tensor
    ref: torch.Tensor

    @classmethod
    def build(cls, c: Ctx, px: int) -> VaeBench:
        vae = build_vae(c.device, c.dtype)
        image = torch.rand(1, 3, px, px, device=c.device, generator=torch.Generator(c.device).manual_seed(0))
        image = (image * 2 - 1).to(c.dtype)
        set_vae_layout(vae, False)
        z = c.run("vae enc", f"{px}² defaults (eager)", lambda: vae.encode(image), OPT)
        ref = c.run("vae dec", f"{px}² defaults (eager)", lambda: vae.decode(z), OPT)
        return cls(c, px, vae, image, z, ref)

    def measure(self, step: str, label: str, opts: perf.PerfOptions) -> None:
        vae, image, z = self.vae, self.image, self.z
        set_vae_layout(vae, opts.vae_channels_last)
        try:
            _first_call(self.c, step, lambda: vae.decode(vae.encode(image)), opts)
            with _warm(self.c):
                self.c.run("vae enc", f"{self.px}² {label}", lambda: vae.encode(image), opts, z)
                self.c.run("vae dec", f"{self.px}² {label}", lambda: vae.decode(z), opts, self.ref)
        finally:
            set_vae_layout(vae, False)


@dataclasses.dataclass
class GtasrBench:
    """One GTASR network (random weights), its LR input and its eager-defaults output."""

    c: Ctx
    net: Any
    lr: torch.Tensor
    ref: Any = None

    @classmethod
    def build(cls, c: Ctx, cfg: Any, lr_px: int) -> GtasrBench:
        net = random_init_(GTASRNet(cfg).to(device=c.device, dtype=c.dtype)).eval()
        lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
        bench = cls(c, net, lr)
        bench.ref = c.run("gtasr", "defaults (eager)", bench.call, OPT)
        return bench

    def call(self) -> torch.Tensor:
        return upscale(self.net, self.lr, seed=0, allow_tile_fallback=False)

    def measure(self, step: str, label: str, opts: perf.PerfOptions) -> None:
        try:
            _first_call(self.c, step, self.call, opts)
            with _warm(self.c):
                self.c.run("gtasr", label, self.call, opts, self.ref)
        finally:
            set_layout(self.net, False)


def _op4ksr(c: Ctx, steps: Steps, flux_cfg: dict[str, Any], lr_px: int, out_px: int, backend: str) -> None:
    """Eager defaults, then FLUX blocks + VAE compiled, + --low-vram, + fp8 row-wise instead of weight-only."""
    flux, vae = build_flux(flux_cfg, c.device, c.dtype), build_vae(c.device, c.dtype)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    run = lambda: upscale_image(flux, vae, lr, long_side=out_px)  # noqa: E731 - the measured call
    ref = _e2e(c, "defaults (eager, for compile2)", flux, vae, lr, out_px, OPT, None, bench=False)

    def row(step: str, label: str) -> None:
        _first_call(c, step, run, OPT)
        with _warm(c):
            _e2e(c, label, flux, vae, lr, out_px, OPT, ref, bench=False)

    def compiled() -> None:
        compile_blocks(flux, backend=backend)
        # The VAE rows' graphs (same block shapes and layout) are reused: this first call compiles FLUX only.
        compile_vae(vae, backend=backend)
        row("e2e", "compiled: FLUX blocks + VAE")

    def low_vram() -> None:
        t = time.perf_counter()
        # Inside the compiled blocks: they recompile on the next call.
        c.extra["compile2_fp8_linears"] = fp8_linears(flux, "weight_only")
        # Constant modulation recorded from an eager small upscale, as the CLI does before it compiles.
        with torch.compiler.set_stance("force_eager"):
            freeze_modulation(flux, lambda: upscale_image(flux, vae, lr[..., :64, :64], scale=4))
        free()
        c.extra["compile2_low_vram_setup_s"] = time.perf_counter() - t
        row("e2e_low_vram", "--low-vram + compiled (FLUX blocks + VAE)")

    def rowwise() -> None:  # the same, with the activations quantised too (torch._scaled_mm)
        for m in flux.modules():
            if isinstance(m, FP8Linear):
                m.mode = "rowwise"
        row("e2e_fp8_rowwise", "--low-vram, fp8 rowwise + compiled")

    if steps.run("e2e", compiled) and steps.run("e2e_low_vram", low_vram):
        steps.run("e2e_fp8_rowwise", rowwise)


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
    checkpoint: Callable[[], None] = lambda: None,
) -> None:
    """VAE encode/decode at ``vae_px``, GTASR at LR ``gtasr_lr_px``, OP4KSR ``lr_px`` -> ``out_px``: eager
    defaults, compiled, compiled + channels_last; OP4KSR all compiled, + ``--low-vram``, + fp8 row-wise; last,
    the VAE compiled with static shapes (``dynamic=False``) against the default ``dynamic=None``."""
    backend = "inductor" if c.device.type == "cuda" else "aot_eager"
    c.extra["compile2_backend"] = backend
    steps = Steps(c, deadline, checkpoint)
    torch._dynamo.reset()
    benches: dict[str, Any] = {}

    def vae() -> None:
        benches["vae"] = VaeBench.build(c, vae_px)
        compile_vae(benches["vae"].vae, backend=backend)
        benches["vae"].measure("vae", "compiled", OPT)

    def gtasr() -> None:
        benches["gtasr"] = GtasrBench.build(c, gtasr_cfg, gtasr_lr_px)
        compile_gtasr(benches["gtasr"].net, backend=backend)
        benches["gtasr"].measure("gtasr", "compiled", OPT)

    def vae_static() -> None:
        # Dynamo's caches are dropped, so every block shape compiles again, each into a static graph.
        torch._dynamo.reset()
        compile_vae(benches["vae"].vae, backend=backend, dynamic=False)
        benches["vae"].measure("vae_static", "compiled, dynamic=False", OPT)

    steps.run("vae", vae)
    steps.run("gtasr", gtasr)
    steps.run("op4ksr", lambda: _op4ksr(c, steps, flux_cfg, lr_px, out_px, backend))
    free()  # the transformer (24 GiB in bf16) died with _op4ksr's frame
    if "gtasr" in benches:
        steps.run(
            "gtasr_cl", lambda: benches["gtasr"].measure("gtasr_cl", "compiled + channels_last", GTASR_CL)
        )
    if "vae" in benches:
        steps.run("vae_cl", lambda: benches["vae"].measure("vae_cl", "compiled + channels_last", VAE_CL))
    if "vae" in benches:
        steps.run("vae_static", vae_static)
