"""Issue #11: OP4KSR and GTASR through the ComfyUI nodes against the headless path, in one process.

Same random weights of the real architectures, same inputs, same device. ComfyUI is imported in this process
from a tree (``--comfy-dir``) and loads the pack as a custom node with its own loader (``comfy_inprocess``); the
nodes are called as ComfyUI's executor calls them (``execute`` under ``torch.inference_mode``), on models built
as the loader nodes build them (``comfy.sd.load_diffusion_model_state_dict`` + RFR for FLUX, the pack's F16 VAE
wrapper, ``GTASR_LoadModel`` on a file). ``--card-gib`` holds the rest of the GPU's memory so ComfyUI's memory
manager decides as on a card of that size (default 80: "FLUX never unloaded between stages on an 80 GB card").

Rows: median time (warm), per-stage times (forward hooks on the VAE encoder/decoder and the transformer; the
rest is "other"), peak memory (ballast excluded), node/headless time ratio, error of the node output against the
headless output, and how often ComfyUI unloaded the model during the timed calls. GTASR also runs the node with a
new seed every call, as ComfyUI's default "randomize" does, with the default counter noise and with the earlier
CPU stream (whose field is cached only for a repeated seed).

    python benchmarks/node_path.py --comfy-dir /tmp/ComfyUI --results OUT/RESULTS_node.md   # H200: ~2 min
    python benchmarks/node_path.py --smoke --no-write                                     # CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from comfy_inprocess import REPO, Comfy, add_model_folder, fully_loaded, start_comfy, watch_unloads
from common import (
    GIB,
    StageTimer,
    add_output_arguments,
    append_results,
    environment,
    markdown_table,
    measure,
    sync,
)
from cost import SMOKE, SMOKE_GTASR, build_flux, build_vae, random_init_
from flops import FLUX_DEV
from perf_parts import free, rel_err
from perf_toggles import commit

from sr4k.gtasr_core import RELEASED, GTASRNet, upscale
from sr4k.op4ksr_core.flux.compile import compile_blocks
from sr4k.op4ksr_core.flux.forward import set_rfr
from sr4k.op4ksr_core.flux.keys import diffusers_to_bfl
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.rfr import RFRConfig

# The smallest FLUX.1 ComfyUI's detection builds: hidden 3072 and 24 heads are fixed by it (cost.SMOKE's 4 heads are not).
SMOKE_FLUX = {**SMOKE.flux, "num_attention_heads": 24, "joint_attention_dim": 64, "pooled_projection_dim": 32}


class Run:
    """Measurement settings and the rows measured so far."""

    def __init__(
        self, device: torch.device, dtype: torch.dtype, repeats: int, warmup: int, compile_backend: str | None
    ) -> None:
        self.device, self.dtype, self.repeats, self.warmup = device, dtype, repeats, warmup
        self.compile_backend = compile_backend  # also measure compiled paths (None: eager only)
        self.ballast: torch.Tensor | None = None  # holds the GPU memory beyond the simulated card
        self.ballast_bytes = 0
        self.rows: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

    def time(
        self,
        part: str,
        path: str,
        fn: Any,
        stages: dict[str, torch.nn.Module],
        ref: torch.Tensor | None,
        versus: str | None = None,
    ) -> torch.Tensor:
        """Measure ``fn`` (warm-ups, then the median of the repeats) with per-stage hooks; append a row.

        ``versus``: the path of the same part this row's time is compared with (e.g. a node row with headless)."""
        timer = StageTimer(stages, self.device)
        try:
            m = measure(fn, self.device, repeats=self.repeats, warmup=self.warmup)
        finally:
            timer.remove()
        out = _nchw(m.result)
        per_stage = {
            k: sorted(r["seconds"] for r in v[-self.repeats :])[len(v[-self.repeats :]) // 2]
            for k, v in timer.records.items()
            if v
        }
        row = {
            "part": part,
            "path": path,
            "median_s": m.median,
            "times_s": m.times,
            "stages_s": per_stage,
            "other_s": m.median - sum(per_stage.values()),
            "peak_gib": (m.peak_bytes - self.ballast_bytes) / GIB,
            "rel_err": None if ref is None else rel_err(out, ref),
            "versus": versus,
        }
        self.rows.append(row)
        print(
            f"  {part:7s} {path:18s} {m.median:8.4f} s  stages {per_stage}  err {row['rel_err']}", flush=True
        )
        return out


def _nchw(image: torch.Tensor) -> torch.Tensor:
    """A node's IMAGE ``[B, H, W, C]`` or a headless ``[B, C, H, W]`` result as float ``[B, C, H, W]`` on the CPU."""
    image = image.float().cpu()
    return image.movedim(-1, 1) if image.shape[-1] in (3, 4) and image.shape[1] not in (3, 4) else image


def _dynamo_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def hold_card(run: Run, card_gib: float) -> None:
    """Allocate the GPU memory beyond ``card_gib`` so that ComfyUI sees a card of that size."""
    if run.device.type != "cuda" or card_gib <= 0:
        return
    free_b, total_b = torch.cuda.mem_get_info(run.device)
    ballast = int(total_b - card_gib * GIB)
    if ballast <= 0:
        run.extra["card"] = f"whole device ({total_b / GIB:.1f} GiB, no ballast)"
        return
    run.ballast = torch.empty(ballast, dtype=torch.uint8, device=run.device)
    run.ballast_bytes = ballast
    run.extra["card"] = f"{card_gib:g} GiB of {total_b / GIB:.1f} (ballast {ballast / GIB:.1f} GiB held)"


def check_unload_watch(run: Run, comfy: Comfy, model: Any, part: str) -> None:
    """Unload everything under the watch: it must see ``model`` go (else a count of 0 above would mean nothing)."""
    with watch_unloads(comfy, model) as unloads:
        comfy.mm.unload_all_models()
    run.extra[f"{part}_unload_watch_sees_unload_all"] = bool(unloads.events)


def upscale_call(comfy: Comfy, model: Any, vae: Any, image: torch.Tensor, long_side: int) -> Any:
    """``OP4KSR_Upscale`` with its widget defaults (auto settings, wavelet colour, untiled VAE) as ComfyUI's
    executor runs it (under ``torch.inference_mode``); returns the output IMAGE."""
    node = comfy.node("OP4KSR_Upscale")

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return node.execute(
                model, vae, image, "long_side", long_side, 4.0, 0.0, "auto", "wavelet", None, "never"
            ).result[0]

    return call


def node_op4ksr(
    run: Run, comfy: Comfy, bfl: dict[str, torch.Tensor], vae: Any, lr: torch.Tensor, long_side: int, ref: Any
) -> None:
    """FLUX as OP4KSR_LoadModel builds it (ComfyUI's loader + RFR), our VAE wrapper, OP4KSR_Upscale."""
    from comfy.sd import load_diffusion_model_state_dict

    t = time.perf_counter()
    patch = comfy.pack_module("nodes.op4ksr_patch")
    model = load_diffusion_model_state_dict(bfl, model_options={})
    model = patch.apply_rfr(model, patch.rfr_config("auto", 1.0, 4096, None))
    comfy_vae = comfy.pack_module("nodes.f16_vae").make_comfy_vae(vae)
    run.extra["op4ksr_node_build_s"] = time.perf_counter() - t
    image = lr.movedim(1, -1).contiguous()  # ComfyUI IMAGE [B, H, W, C]
    call = upscale_call(comfy, model, comfy_vae, image, long_side)
    stages = {
        "encode": vae.encoder,
        "transformer": model.model.diffusion_model,
        "decode": vae.decoder,
    }
    t = time.perf_counter()
    call()  # loads FLUX onto the device (not timed: a workflow's first run)
    sync(run.device)
    run.extra["op4ksr_node_first_call_s"] = time.perf_counter() - t
    with watch_unloads(comfy, model) as unloads:
        run.time("op4ksr", "node", call, stages, ref, versus="headless")
    run.rows[-1]["unloads"] = len(unloads.events)
    run.rows[-1]["loaded_after"] = fully_loaded(comfy, model)
    if run.compile_backend:
        node_op4ksr_compiled(run, comfy, model, comfy_vae, image, long_side, ref)
    check_unload_watch(run, comfy, model, "op4ksr")


def node_op4ksr_compiled(
    run: Run, comfy: Comfy, model: Any, comfy_vae: Any, image: torch.Tensor, long_side: int, ref: Any
) -> None:
    """The same through core's TorchCompileModel (the whole diffusion model, ComfyUI's compile wrapper)."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper
    from comfy_extras.nodes_torch_compile import TorchCompileModel

    backend = run.compile_backend
    if backend in ("inductor", "cudagraphs"):  # the node's options
        compiled = TorchCompileModel.execute(model, backend).result[0]
    else:  # e.g. aot_eager in the CPU test: the node's own body with another backend
        compiled = model.clone()
        set_torch_compile_wrapper(model=compiled, backend=backend)
    call = upscale_call(comfy, compiled, comfy_vae, image, long_side)
    t = time.perf_counter()
    call()
    sync(run.device)
    run.extra["op4ksr_node_compile_first_call_s"] = time.perf_counter() - t
    run.extra["dynamo_unique_graphs"] = _dynamo_graphs()  # both compiled paths so far: 0 = nothing compiled
    vae = comfy_vae.first_stage_model.vae
    # No hook inside the compiled transformer: its time is the row's remainder ("other").
    with watch_unloads(comfy, model) as unloads:
        run.time(
            "op4ksr",
            "node, compiled",
            call,
            {"encode": vae.encoder, "decode": vae.decoder},
            ref,
            versus="headless, compiled",
        )
    run.rows[-1]["unloads"] = len(unloads.events)
    run.rows[-1]["loaded_after"] = fully_loaded(comfy, model)


def part_op4ksr(run: Run, comfy: Comfy, smoke: bool) -> None:
    flux_cfg = SMOKE_FLUX if smoke else FLUX_DEV
    lr_px, out_px = (32, 128) if smoke else (1024, 4096)
    t = time.perf_counter()
    flux = set_rfr(build_flux(flux_cfg, run.device, run.dtype), RFRConfig(mode="ntk"))
    vae = build_vae(run.device, run.dtype)
    run.extra["op4ksr_build_s"] = time.perf_counter() - t
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    stages = {"encode": vae.encoder, "transformer": flux, "decode": vae.decoder}
    ref = run.time(
        "op4ksr", "headless", partial(upscale_image, flux, vae, lr, long_side=out_px), stages, None
    )
    if run.compile_backend:  # the CLI's --compile for the transformer: its repeated blocks (regional)
        compile_blocks(flux, backend=run.compile_backend)
        t = time.perf_counter()
        upscale_image(flux, vae, lr, long_side=out_px)
        sync(run.device)
        run.extra["op4ksr_headless_compile_first_call_s"] = time.perf_counter() - t
        run.time(
            "op4ksr",
            "headless, compiled",
            partial(upscale_image, flux, vae, lr, long_side=out_px),
            {"encode": vae.encoder, "decode": vae.decoder},
            ref,
        )
    t = time.perf_counter()
    # ComfyUI loads the BFL layout; it keeps its own copy, so the diffusers model leaves the device first.
    bfl = {k: v.to("cpu") for k, v in diffusers_to_bfl(flux.state_dict()).items()}
    del flux
    free()
    run.extra["op4ksr_convert_s"] = time.perf_counter() - t
    node_op4ksr(run, comfy, bfl, vae, lr, out_px, ref)


def part_gtasr(run: Run, comfy: Comfy, smoke: bool, scratch: Path) -> None:
    from safetensors.torch import save_file

    cfg, lr_px = (SMOKE_GTASR, 64) if smoke else (RELEASED, 1024)
    net = random_init_(GTASRNet(cfg).to(device=run.device, dtype=run.dtype)).eval().requires_grad_(False)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    stages = {"network": net}
    ref = run.time(
        "gtasr", "headless", lambda: upscale(net, lr, seed=0, allow_tile_fallback=False), stages, None
    )
    folder = scratch / "models" / "gtasr"
    add_model_folder(comfy, "gtasr", folder)
    save_file(
        {k: v.contiguous().cpu() for k, v in net.state_dict().items()}, str(folder / "bench.safetensors")
    )
    precision = "fp32" if run.dtype == torch.float32 else "bf16"
    patcher = comfy.node("GTASR_LoadModel").execute("bench.safetensors", precision).result[0]
    node = comfy.node("GTASR_Upscale")
    image = lr.movedim(1, -1).contiguous()

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return node.execute(patcher, image, 0, "auto", 512, 64).result[0]

    call()  # loads the network onto the device
    with watch_unloads(comfy, patcher) as unloads:
        run.time("gtasr", "node", call, {"network": patcher.model}, ref, versus="headless")
    run.rows[-1]["unloads"] = len(unloads.events)
    run.rows[-1]["loaded_after"] = fully_loaded(comfy, patcher)
    # ComfyUI's seed widget defaults to "randomize": a new seed, so a new noise field, every run; the default
    # counter stream draws it on the device, the earlier CPU stream on one CPU core.
    seeds = iter(range(1, 1 << 30))
    for noise, path in (("counter", "node, new seed"), ("torch", "node, new seed, torch noise")):

        def call_new_seed(noise: str = noise) -> torch.Tensor:
            with torch.inference_mode():
                return node.execute(patcher, image, next(seeds), "auto", 512, 64, noise=noise).result[0]

        run.time("gtasr", path, call_new_seed, {"network": patcher.model}, None, versus="headless")
    # A target that is not x4 (UHD's 3840 from 1024: one pass, then an antialiased resize, on the GPU).
    side = lr_px * 15 // 4

    def call_resized() -> torch.Tensor:
        with torch.inference_mode():
            return node.execute(
                patcher, image, 0, "auto", 512, 64, target="long_side", long_side=side
            ).result[0]

    run.time(
        "gtasr",
        f"node, long side {side} (x4 pass + resize)",
        call_resized,
        {"network": patcher.model},
        None,
        versus="node",
    )
    check_unload_watch(run, comfy, patcher, "gtasr")


def section(run: Run, env: dict[str, str], comfy: Comfy, argv: list[str], rev: str) -> str:
    by_path = {(r["part"], r["path"]): r for r in run.rows}
    rows = []
    for r in run.rows:
        head = by_path.get((r["part"], r["versus"]))
        ratio = "-" if head is None else f"{r['median_s'] / head['median_s']:.3f} ({r['versus']})"
        stages = " / ".join(f"{k} {v:.3f}" for k, v in r["stages_s"].items()) + f" / other {r['other_s']:.3f}"
        err = "-" if r["rel_err"] is None else f"{r['rel_err']:.2e}"
        unl = (
            "-"
            if "unloads" not in r
            else f"{r['unloads']} ({'loaded' if r['loaded_after'] else 'NOT loaded'})"
        )
        rows.append(
            [r["part"], r["path"], f"{r['median_s']:.3f}", stages, f"{r['peak_gib']:.2f}", ratio, err, unl]
        )
    extra = "; ".join(
        f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in run.extra.items()
    )
    return "\n".join(
        [
            f"## ComfyUI node path vs headless (issue #11): benchmarks/node_path.py ({env['date']}, commit {rev})",
            "",
            f"- Device: {env['device']}; torch {env['torch']} (CUDA {env['cuda']}); dtype {run.dtype}; "
            f"ComfyUI {comfy.version} in-process, pack loaded by `nodes.load_custom_node`",
            f"- Random weights of the real architectures; median of {run.repeats} after {run.warmup} warm-up and a "
            "first (loading) call; peak = max allocated minus the ballast; err = ||out - headless|| / ||headless|| (the eager headless output); time ratio = this row / the row named; "
            "unloads = ComfyUI unloading the model during the timed calls (and whether it is fully loaded after)",
            f"- {extra}",
            f"- Command: `python benchmarks/node_path.py {' '.join(argv)}`",
            "",
            markdown_table(
                ["part", "path", "median s", "stages s", "peak GiB", "time ratio", "err", "unloads"],
                rows,
            ),
        ]
    )


def default_comfy_dir() -> Path:
    for var in ("SR4K_COMFYUI_DIR", "SR4K_COMFY_TREE"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return REPO / ".cache" / "comfyui" / "ComfyUI"


def main(argv: list[str] | None = None) -> Run:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--comfy-dir", type=Path, default=default_comfy_dir())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (default on CPU)")
    p.add_argument("--parts", default="op4ksr,gtasr")
    p.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        default=None,
        metavar="BACKEND",
        help="also OP4KSR compiled: headless regional (the CLI's --compile) vs node + core TorchCompileModel",
    )
    p.add_argument("--card-gib", type=float, default=80.0, help="simulate a card of this size (0: whole GPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per row (default: smoke 1, GPU 3)")
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed calls before them (default: smoke 0, GPU 1)"
    )
    add_output_arguments(p)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    smoke = args.smoke or device.type != "cuda"
    repeats = args.repeats if args.repeats is not None else 1 if smoke else 3
    warmup = args.warmup if args.warmup is not None else 0 if smoke else 1
    run = Run(device, torch.float32 if smoke else torch.bfloat16, repeats, warmup, args.compile)
    hold_card(run, args.card_gib)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sr4k_node_path_") as tmp:
        comfy = start_comfy(args.comfy_dir, Path(tmp), cpu=device.type != "cuda")
        run.extra["comfy_start_s"] = time.perf_counter() - t0
        for name in args.parts.split(","):
            print(f"[{time.perf_counter() - t0:6.1f} s] part {name}", flush=True)
            if name == "op4ksr":
                part_op4ksr(run, comfy, smoke)
            elif name == "gtasr":
                part_gtasr(run, comfy, smoke, Path(tmp))
            else:
                raise SystemExit(f"--parts: unknown part {name!r} (op4ksr, gtasr)")
            free()
    run.extra["total_s"] = time.perf_counter() - t0
    env = environment(device)
    text = section(run, env, comfy, [a for a in argv if a != "--no-write"], args.commit or commit())
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps({"env": env, "rows": run.rows, "extra": run.extra}, indent=1, default=str)
        )
    if not args.no_write:
        append_results(text, args.results)
    return run


if __name__ == "__main__":
    main()
