"""Cost of OP4KSR and GTASR at real size (random weights): time, peak memory, FLOPs and TFLOP/s per stage.

Builds the FLUX.1-dev transformer (19 double + 38 single blocks, hidden 3072; on the meta device, then
materialised on the target device), the real-size F16 VAE and the released GTASR, all with random weights,
and measures: the bf16 matmul ceiling; the transformer at 2048^2 and 4096^2 with F16 latents and the
patch-free F8 alternative at 4096^2 (4x the tokens); VAE encode / decode; the headless OP4KSR path end to end
(``op4ksr_core.headless.upscale_image``, per stage through forward hooks); GTASR LR 1024 -> 4096 patch-free
and with the released 512/64 tiling. Designed for < 5 min on one H100.

FLOPs (``flops.py``): analytical for the transformer, checked against ``torch.utils.flop_counter``; also in
docs/op4ksr.md §10's 2 x parameters x tokens convention (``2PL``) so its TFLOP/s compare; FlopCounterMode on meta
tensors for the VAE and GTASR. TFLOP/s are set against the matmul ceiling measured first on the same device.

    python benchmarks/cost.py --json cost.json          # CUDA: full size; CPU: the reduced smoke plan
    python benchmarks/cost.py --smoke --no-write        # CI smoke test (reduced sizes, < 1 min on CPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from common import GIB, StageTimer, append_results, environment, matmul_ceiling, measure
from cost_models import build_flux, build_vae, flux_inputs, random_init_
from cost_plans import DTYPES, FULL, SLOW_TOKENS, SMOKE, SMOKE_GTASR, Plan
from cost_report import section
from flops import flux_flops, flux_flops_2pl, gtasr_flops, image_tokens, meta_flops

from sr4k.gtasr_core import GTASRNet, plan_tiles, upscale
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.onestep import OneStepConfig
from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.config import FLUX_F16

# The plans and model builders live in cost_plans / cost_models; other benchmark scripts import them from here
# (``from cost import build_flux, SMOKE, ...``), so they stay names of this module.
__all__ = [
    "DTYPES",
    "FULL",
    "PARTS",
    "SLOW_TOKENS",
    "SMOKE",
    "SMOKE_GTASR",
    "Bench",
    "Plan",
    "build_flux",
    "build_vae",
    "flux_inputs",
    "main",
    "random_init_",
    "run_e2e",
    "section",
]


class Bench:
    """One run: plan, device, dtype, measured ceiling, and the models (built once, shared by the parts)."""

    def __init__(self, plan: Plan, device: torch.device) -> None:
        self.plan, self.device, self.dtype = plan, device, DTYPES[plan.dtype]
        self.ceiling = matmul_ceiling(device, self.dtype, plan.matmul_n)
        self._flux: torch.nn.Module | None = None
        self._vae: F16VAE | None = None

    def flux(self) -> torch.nn.Module:
        if self._flux is None:
            self._flux = build_flux(self.plan.flux, self.device, self.dtype)
        return self._flux

    def vae(self) -> F16VAE:
        if self._vae is None:
            self._vae = build_vae(self.device, self.dtype)
        return self._vae

    def measure(self, fn: Any, slow: bool = False) -> Any:
        plan = self.plan
        with torch.no_grad():
            return measure(
                fn, self.device, repeats=plan.slow_repeats if slow else plan.repeats, warmup=plan.warmup
            )

    def row(
        self, stage: str, case: str, size: str, m: Any, flops: float | None, **extra: Any
    ) -> dict[str, Any]:
        tflops = flops / m.median / 1e12 if flops else None
        return {
            "stage": stage,
            "case": case,
            "size": size,
            **m.summary(),
            "tflop": flops / 1e12 if flops else None,
            "tflops_per_s": tflops,
            "pct_ceiling": 100 * tflops / self.ceiling if tflops else None,
            **extra,
        }


def bench_transformer(b: Bench) -> list[dict]:
    model, cfg, txt = b.flux(), b.plan.flux, b.plan.text_tokens
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for label, px, down in b.plan.transformer:
        n = image_tokens(px, down)
        inputs = flux_inputs(cfg, n, txt, b.device, b.dtype)
        m = b.measure(lambda inputs=inputs: model(**inputs)[0], slow=n > SLOW_TOKENS)
        if not bool(torch.isfinite(m.result).all()):
            raise RuntimeError(f"transformer output not finite for {label}")
        f, f2 = flux_flops(cfg, n, txt)["exact"], flux_flops_2pl(params, n, txt, cfg)
        rows.append(
            b.row(
                "transformer",
                label,
                f"{n:,} img + {txt} txt tokens",
                m,
                f,
                params=params,
                tflop_2PL=f2 / 1e12,
                tflops_per_s_2PL=f2 / m.median / 1e12,
            )
        )
    return rows


def bench_vae(b: Bench) -> list[dict]:
    vae = b.vae()
    with torch.device("meta"):
        meta_vae = F16VAE(FLUX_F16, decode_mode="partitioned")
    rows = []
    for px in b.plan.vae_px:
        lat, ch = px // FLUX_F16.downscale, FLUX_F16.latent_channels
        image = torch.rand(1, 3, px, px, device=b.device, dtype=b.dtype) * 2 - 1
        enc = b.measure(lambda image=image: vae.encode(image))
        dec = b.measure(lambda z=enc.result: vae.decode(z))
        f_enc = meta_flops(meta_vae.encode, torch.empty(1, 3, px, px, device="meta"))
        f_dec = meta_flops(meta_vae.decode, torch.empty(1, ch, lat, lat, device="meta"))
        rows.append(b.row("vae encode", f"{px}²", f"{px}² -> {lat}² x {ch}", enc, f_enc))
        rows.append(b.row("vae decode", f"{px}²", f"{lat}² x {ch} -> {px}²", dec, f_dec))
    return rows


def run_e2e(
    transformer: torch.nn.Module,
    vae: F16VAE,
    lr_px: int,
    out_px: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    config: OneStepConfig | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Time ``headless.upscale_image`` (LR lr_px^2 -> out_px^2) and each stage inside it (forward hooks on
    the VAE encoder, the transformer and the VAE decoder; 'other' = bicubic, padding, transfers, colour)."""
    config = config or OneStepConfig()
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    timer = StageTimer(
        {"vae encode": vae.encoder, "transformer": transformer, "vae decode": vae.decoder}, device
    )
    try:
        with torch.no_grad():
            m = measure(
                lambda: upscale_image(transformer, vae, lr, long_side=out_px, config=config),
                device,
                repeats=repeats,
                warmup=warmup,
            )
    finally:
        timer.remove()
    stages = {k: v[-repeats:] for k, v in timer.records.items()}  # the timed repeats only
    stage_s = {k: statistics.median(r["seconds"] for r in v) for k, v in stages.items()}
    return m, {
        "stage_s": stage_s,
        "other_s": m.median - sum(stage_s.values()),
        "stage_peak_gib": {k: max(r["peak_bytes"] for r in v) / GIB for k, v in stages.items()},
    }


def bench_e2e(b: Bench) -> list[dict]:
    """Headless OP4KSR upscale (bicubic, encode, one transformer step, decode, wavelet colour) per stage."""
    config, rows = OneStepConfig(), []
    for lr_px, out_px in b.plan.e2e:
        m, stages = run_e2e(b.flux(), b.vae(), lr_px, out_px, b.device, b.plan.repeats, b.plan.warmup, config)
        n = image_tokens(out_px, FLUX_F16.downscale)
        f = flux_flops(b.plan.flux, n, config.empty_text_tokens)["exact"]
        rows.append(
            b.row(
                "op4ksr end to end",
                f"{lr_px}² -> {out_px}²",
                f"{n:,} img + {config.empty_text_tokens} txt tokens",
                m,
                None,
                transformer_tflop=f / 1e12,
                **stages,
            )
        )
    return rows


def bench_gtasr(b: Bench) -> list[dict]:
    cfg, lr_px, tile = b.plan.gtasr, b.plan.gtasr_lr, b.plan.gtasr_tile
    net = random_init_(GTASRNet(cfg).to(device=b.device, dtype=b.dtype)).eval()
    s, g = cfg.scale, torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=g)
    x = (torch.rand(1, 3, s * lr_px, s * lr_px, generator=g) * 2 - 1).to(b.device)
    fwd = b.measure(lambda: net(x, 1.0, lr.to(b.device) * 2 - 1))
    tiled = b.measure(
        lambda: upscale(net, lr, seed=0, tile=tile, overlap=tile // 8, allow_tile_fallback=False)
    )
    rects = plan_tiles(lr_px, lr_px, tile, tile // 8, net.lr_multiple)  # upscale's default plan
    n_tiles = len(rects)
    size = f"{lr_px}² -> {s * lr_px}²"
    return [
        b.row("gtasr forward", "patch-free", size, fwd, gtasr_flops(cfg, lr_px)),
        b.row(
            "gtasr upscale",
            f"tiled {tile}/{tile // 8} ({n_tiles} tiles of {rects[0].h}²)",
            size,
            tiled,
            n_tiles * gtasr_flops(cfg, rects[0].h),
            tiles=n_tiles,
        ),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="reduced sizes (default on CPU)")
    p.add_argument("--only", default="transformer,vae,e2e,gtasr", help="comma list of parts to run")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument(
        "--results", type=Path, default=None, help="markdown file to append to (default RESULTS.md)"
    )
    p.add_argument("--no-write", action="store_true", help="print the section, do not append it")
    return p.parse_args(argv)


PARTS = {"transformer": bench_transformer, "vae": bench_vae, "e2e": bench_e2e, "gtasr": bench_gtasr}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    plan = SMOKE if args.smoke or device.type != "cuda" else FULL
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    env = environment(device)
    bench = Bench(plan, device)
    rows = [row for part in args.only.split(",") for row in PARTS[part](bench)]
    ceiling = bench.ceiling
    text = section(plan, env, ceiling, rows, [a for a in argv if a != "--no-write"])
    print(text)
    result = {"env": env, "plan": asdict(plan), "ceiling_tflops": ceiling, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.no_write:
        append_results(text, *([args.results] if args.results else []))
    return result


if __name__ == "__main__":
    main()
