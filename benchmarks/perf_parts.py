"""The measured parts of ``perf_toggles.py``: F16 VAE, OP4KSR end to end (headless), GTASR, regional compile.

Each part measures the baseline (``srkit.perf.BASELINE``: every optimisation off) and each optimisation as a
toggle in one process, on the same weights and inputs, and returns rows: time, peak memory (whole process:
weights + working set), working memory (peak - allocated before) and the error against the baseline output.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from common import GIB, StageTimer, measure, sync
from cost import build_flux, build_vae, random_init_

from sr4k.gtasr_core import TILE_PLANS, GTASRNet, plan_tiles, upscale
from sr4k.gtasr_core.noise import clear_noise_cache, set_layout
from sr4k.op4ksr_core.flux.const_modulation import freeze_modulation
from sr4k.op4ksr_core.flux.fp8_linear import FP8Linear, fp8_linears
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.vae.model import set_vae_layout
from sr4k.srkit import perf
from sr4k.srkit.counter_normal import counter_normal
from sr4k.srkit.sizing import padded_size

OPT = perf.PerfOptions()  # this version's defaults
# least memory; its GroupNorms keep NHWC (perf.nhwc_group_norm "auto") unless a row says "native GroupNorm"
LEAN = dataclasses.replace(OPT, vae_channels_last=True, gtasr_channels_last=True)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    if out is None:
        return float("nan")
    out, ref = out.float().cpu(), ref.float().cpu()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


@dataclasses.dataclass
class Ctx:
    device: torch.device
    dtype: torch.dtype
    repeats: int
    warmup: int
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def run(
        self,
        part: str,
        label: str,
        fn: Callable[[], Any],
        opts: perf.PerfOptions,
        ref: Any = None,
        bench: bool = False,
        **info: Any,
    ) -> Any:
        """Measure ``fn`` under ``opts`` (and cudnn.benchmark if ``bench``); append a row; return its output.

        A variant that raises (a CUDA-only failure, an out-of-memory) gets a row with its error and returns None,
        so one broken toggle cannot take the rest of its part's rows with it on a rationed GPU run.
        """
        old = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = bench
        try:
            with perf.options(opts), torch.no_grad():
                m = measure(fn, self.device, repeats=self.repeats, warmup=self.warmup)
        except Exception as e:  # recorded in the row and printed; the part goes on
            traceback.print_exc()
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            self.rows.append(
                {
                    "part": part,
                    "variant": f"{label} (failed: {error})",
                    "median_s": float("nan"),
                    "times_s": [],
                    "peak_gib": float("nan"),
                    "work_gib": float("nan"),
                    "rel_err": None,
                    "error": error,
                    **info,
                }
            )
            print(f"  {part:8s} {label:44s} failed: {error}", flush=True)
            free()
            return None
        finally:
            torch.backends.cudnn.benchmark = old
        out = m.result
        row = {
            "part": part,
            "variant": label,
            "median_s": m.median,
            "times_s": m.times,
            "peak_gib": m.peak_bytes / GIB,
            "work_gib": m.growth_bytes / GIB,
            "rel_err": None if ref is None else rel_err(out, ref),
            **info,
        }
        self.rows.append(row)
        print(
            f"  {part:8s} {label:44s} {m.median:8.4f} s  peak {row['peak_gib']:6.2f} GiB  work "
            f"{row['work_gib']:6.2f}  err {row['rel_err']}",
            flush=True,
        )
        return out


def part_vae(c: Ctx, px: int, small_px: int) -> None:
    """Encode and decode at ``px`` (and the default path at ``small_px`` for the memory estimate)."""
    vae = build_vae(c.device, c.dtype)
    image = torch.rand(1, 3, px, px, device=c.device, generator=torch.Generator(c.device).manual_seed(0))
    image = (image * 2 - 1).to(c.dtype)
    variants = [
        ("baseline", perf.BASELINE, False),
        ("+gemm attention", dataclasses.replace(perf.BASELINE, vae_gemm_attention=True), False),
        (
            "+channels_last (native GroupNorm)",
            dataclasses.replace(perf.BASELINE, vae_channels_last=True),
            False,
        ),
        (
            "+channels_last + NHWC GroupNorm",
            dataclasses.replace(perf.BASELINE, vae_channels_last=True, nhwc_group_norm="auto"),
            False,
        ),
        ("+chunked upsample", dataclasses.replace(perf.BASELINE, vae_chunked_upsample=True), False),
        ("defaults", OPT, False),
        ("defaults + cudnn.benchmark", OPT, True),
        ("lean (defaults + channels_last)", LEAN, False),
        ("lean, native GroupNorm", dataclasses.replace(LEAN, nhwc_group_norm="off"), False),
        # x2 + 3x3 conv (upsamplers, tail) as one stride-2 transposed conv: 33.4 instead of 39.6 conv TFLOP at 4096².
        ("defaults + fused upsample conv", dataclasses.replace(OPT, fused_upsample_conv=True), False),
        (
            "defaults + fused upsample conv, upsamplers whole",
            dataclasses.replace(OPT, fused_upsample_conv=True, vae_chunked_upsample=False),
            False,
        ),
        ("lean + fused upsample conv", dataclasses.replace(LEAN, fused_upsample_conv=True), False),
    ]
    ref_z = ref_img = None
    for label, opts, bench in variants:
        set_vae_layout(vae, opts.vae_channels_last)
        z = c.run("vae enc", f"{px}² {label}", lambda: vae.encode(image), opts, ref_z, bench)
        img = c.run(
            "vae dec",
            f"{px}² {label}",
            lambda z=z if ref_z is None else ref_z: vae.decode(z),
            opts,
            ref_img,
            bench,
        )
        if ref_z is None:
            ref_z, ref_img = z, img
    # Working memory of the default path at a second size (memory estimates are fitted to these two).
    set_vae_layout(vae, OPT.vae_channels_last)
    small = image[..., :small_px, :small_px].contiguous()
    z = c.run("vae enc", f"{small_px}² defaults", lambda: vae.encode(small), OPT)
    c.run("vae dec", f"{small_px}² defaults", lambda: vae.decode(z), OPT)


def free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _e2e(
    c: Ctx,
    label: str,
    flux: torch.nn.Module,
    vae: Any,
    lr: torch.Tensor,
    out_px: int,
    opts: perf.PerfOptions,
    ref: Any,
    bench: bool = True,
) -> Any:
    timer = StageTimer({"encode": vae.encoder, "transformer": flux, "decode": vae.decoder}, c.device)
    try:
        out = c.run("op4ksr", label, lambda: upscale_image(flux, vae, lr, long_side=out_px), opts, ref, bench)
    finally:
        timer.remove()
    if out is None:  # the row holds the failure
        return None
    stages = {
        k: sorted(r["seconds"] for r in v[-c.repeats :])[len(v[-c.repeats :]) // 2]
        for k, v in timer.records.items()
        if v
    }
    c.rows[-1]["stages_s"] = stages
    c.rows[-1]["other_s"] = c.rows[-1]["median_s"] - sum(stages.values())
    c.rows[-1]["weights_gib"] = (
        sum(
            t.numel() * t.element_size()
            for t in [*flux.parameters(), *flux.buffers()]
            if t.is_cuda or c.device.type == "cpu"
        )
        / GIB
    )
    return out


def nhwc_view(x: torch.Tensor) -> torch.Tensor:
    """``x`` [B, C, H, W] as an NHWC tensor seen through ``movedim`` (ComfyUI's IMAGE in a node, read_image)."""
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


def part_op4ksr(c: Ctx, flux_cfg: dict[str, Any], lr_px: int, out_px: int, fp8: bool) -> None:
    """Headless upscale: baseline, all optimisations, + constant modulation, + fp8 (row-wise, weight-only)."""
    flux, vae = build_flux(flux_cfg, c.device, c.dtype), build_vae(c.device, c.dtype)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    ref = _e2e(c, "baseline", flux, vae, lr, out_px, perf.BASELINE, None, bench=False)
    _e2e(c, "defaults", flux, vae, lr, out_px, OPT, ref, bench=False)
    no_pin = dataclasses.replace(OPT, cudnn_attention_first=False)
    _e2e(c, "defaults, SDPA's own priority (no cuDNN pin)", flux, vae, lr, out_px, no_pin, ref, bench=False)
    _e2e(c, "defaults + cudnn.benchmark", flux, vae, lr, out_px, OPT, ref)
    # As the nodes and the CLI hand the image (see part_gtasr): must match the row above.
    _e2e(c, "defaults, NHWC-view input (nodes, CLI)", flux, vae, nhwc_view(lr), out_px, OPT, ref)
    t = time.perf_counter()
    # One small upscale at the same t*, guidance and (empty) pooled vector records the modulation.
    frozen = freeze_modulation(flux, lambda: upscale_image(flux, vae, lr[..., :64, :64], scale=4))
    c.extra["modulation_linears_frozen"] = len(frozen.originals)
    c.extra["freeze_modulation_s"] = time.perf_counter() - t
    free()
    _e2e(c, "defaults + constant modulation", flux, vae, lr, out_px, OPT, ref)
    if fp8:
        t = time.perf_counter()
        n = fp8_linears(flux, "rowwise")
        free()
        c.extra["fp8_convert_s"], c.extra["fp8_linears"] = time.perf_counter() - t, n
        _e2e(c, "defaults + const mod + fp8 rowwise", flux, vae, lr, out_px, OPT, ref)
        for m in flux.modules():
            if isinstance(m, FP8Linear):
                m.mode = "weight_only"
        _e2e(c, "--low-vram (const mod + fp8 weight-only)", flux, vae, lr, out_px, OPT, ref)
        _e2e(c, "--low-vram + channels_last VAE", flux, vae, lr, out_px, LEAN, ref)


def part_gtasr(c: Ctx, cfg: Any, lr_px: int) -> None:
    """upscale() patch-free: baseline vs optimisations; noise: the counter stream (default) against the
    earlier CPU stream, each with a new seed per call (ComfyUI's randomize)."""
    net = random_init_(GTASRNet(cfg).to(device=c.device, dtype=c.dtype)).eval()
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    # The network rows keep the stream of the earlier tables, a fixed seed's CPU field cached on the device, so
    # they stay comparable with them (and the baseline, with the input on the CPU, does not draw the counter
    # field there); the noise rows below measure each stream with a new seed.
    up = dict(seed=0, allow_tile_fallback=False, noise="torch")
    B = perf.BASELINE
    ref = c.run("gtasr", "baseline", lambda: upscale(net, lr, **up), B)
    on = dict(gtasr_device_input=True, pinned_output=True)
    steps = [
        ("+device input (noise cached)", dataclasses.replace(B, **on)),
        ("+native GroupNorm", dataclasses.replace(B, **on, gtasr_native_groupnorm=True)),
        ("+box resample (pooling)", dataclasses.replace(B, **on, gtasr_box_resample=True)),
        ("defaults (+ head in slabs)", OPT),
        ("defaults, fp32 GroupNorm", dataclasses.replace(OPT, gtasr_native_groupnorm=False)),
        # the window attention in one call (all 16,384 windows at LR 1024) against the default chunks of 2048
        ("defaults, window attention unchunked", dataclasses.replace(OPT, gtasr_attn_windows=0)),
        ("lean (defaults + channels_last)", LEAN),
        ("lean, native GroupNorm", dataclasses.replace(LEAN, nhwc_group_norm="off")),
        ("defaults + fused upsample conv", dataclasses.replace(OPT, fused_upsample_conv=True)),
        ("lean + fused upsample conv", dataclasses.replace(LEAN, fused_upsample_conv=True)),
    ]
    for label, opts in steps:
        c.run("gtasr", label, lambda: upscale(net, lr, **up), opts, ref, bench=True)
        set_layout(net, False)
    # The rows above run with cudnn.benchmark on; the CLI and the nodes leave it as they find it (off in ComfyUI
    # unless started with --fast autotune): this row is what they get.
    c.run("gtasr", "defaults, cudnn.benchmark off", lambda: upscale(net, lr, **up), OPT, ref, bench=False)
    # The input as the nodes (ComfyUI IMAGE through movedim) and the CLI (read_image) hand it: an NHWC view. Before
    # srkit/layout.py it ran the whole UNet in channels_last; now it must match the "defaults" row.
    nhwc = nhwc_view(lr)
    c.run(
        "gtasr",
        "defaults, NHWC-view input (nodes, CLI)",
        lambda: upscale(net, nhwc, **up),
        OPT,
        ref,
        bench=True,
    )
    # Tiles (512 / 64; half the image in smoke runs), as auto falls back to on a card without room for the whole
    # image: the whole-image buffers stay on the host and only tiles travel, so the working memory is about one
    # tile's (gtasr_core.memory.upscale_memory at the tile size). The default plan makes the tiles as small as the
    # overlap allows (LR 1024²: 9 of 384² instead of 9 of 512², 44 % fewer pixels); the released plan for the ratio.
    tile = 512 if lr_px >= 1024 else max(net.lr_multiple, lr_px // 2)
    for plan in TILE_PLANS:
        side = padded_size(lr_px, lr_px, net.lr_multiple)[0]
        rects = plan_tiles(side, side, tile, tile // 8, net.lr_multiple, plan)
        c.run(
            "gtasr",
            f"defaults, {plan} tiles ≤ {tile}/{tile // 8}: {len(rects)} × {rects[0].h}² (whole image on the host)",
            lambda plan=plan: upscale(net, lr, tile=tile, overlap=tile // 8, tile_plan=plan, **up),
            OPT,
            None,
            bench=True,
        )
    set_layout(net, False)
    clear_noise_cache()
    t = time.perf_counter()
    with perf.options(OPT), torch.no_grad():
        upscale(net, lr, seed=12345, allow_tile_fallback=False, noise="torch")
    sync(c.device)
    c.extra["gtasr_new_seed_torch_noise_s"] = time.perf_counter() - t
    c.run(
        "gtasr",
        "defaults: counter noise, new seed each call",
        lambda: upscale(net, lr, seed=int(time.time_ns() % 2**31), allow_tile_fallback=False),
        OPT,
        None,
        bench=True,
    )
    set_layout(net, False)
    # a second size for the memory estimate (upscale_memory is fitted to the working memory of both)
    half = lr[..., : lr_px // 2, : lr_px // 2].contiguous()
    for label, opts in (("defaults", OPT), ("lean", LEAN)):
        c.run("gtasr", f"{label}, LR {lr_px // 2}", lambda: upscale(net, half, **up), opts, None, bench=True)
        set_layout(net, False)
    # counter noise: the same bits on this device as on the CPU
    shape = (1, 3, 256, 256)
    c.extra["counter_noise_bit_identical_cpu_vs_device"] = bool(
        torch.equal(counter_normal(shape, 7, c.device).cpu(), counter_normal(shape, 7, "cpu"))
    )


def part_compile(c: Ctx, flux_cfg: dict[str, Any], lr_px: int, out_px: int) -> None:
    """Regional torch.compile of the FLUX blocks (diffusers ``compile_repeated_blocks``), headless path."""
    flux, vae = build_flux(flux_cfg, c.device, c.dtype), build_vae(c.device, c.dtype)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    ref = _e2e(c, "defaults (eager, for compile)", flux, vae, lr, out_px, OPT, None)
    flux.compile_repeated_blocks(fullgraph=True)
    t = time.perf_counter()
    with perf.options(OPT), torch.no_grad():
        upscale_image(flux, vae, lr, long_side=out_px)
    sync(c.device)
    c.extra["compile_first_call_s"] = time.perf_counter() - t
    _e2e(c, "defaults + regional compile", flux, vae, lr, out_px, OPT, ref)
