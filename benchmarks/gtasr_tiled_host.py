"""What a GTASR upscale costs beyond the network (issue #11), tiled or not, node output included: the host's work.

A tiled run (a card with less free memory than a patch-free run needs, or the node's ``tiling`` = force) keeps the
whole image on the host and blends each tile's output into it there, in series with the GPU: at 1024² → 4096²
with the released 512 / 64 plan that is 9 tiles of 2048² HR pixels. This script times ``gtasr_core.upscale`` with a
stand-in network (a ``GTASRNet`` whose forward only writes a zero HR tile, timed apart), so what is left is the
work around the network: bicubic, noise, the tile loop, the blend, the preview regions and the final crop. With
``--device cuda`` the stand-in lives on the GPU, so the rows also hold the tile copies between host and GPU and the
weighting on the device, as a real tiled run on a card has them.

Rows, per version of the package:

- ``patch-free``: one call on the whole image (bicubic, noise, one output, clamp);
- ``tiled``: the tile plan of ``--tile`` / ``--overlap``;
- ``tiled + preview``: the same with the *GTASR Upscale* node's progress preview (``TilePreview.paste``);
- ``… → IMAGE``: as the node runs them: the input is a ComfyUI ``IMAGE`` ``[1, H, W, 3]`` seen as ``[1, 3, H, W]``,
  and the output becomes an ``IMAGE`` as that version's node makes it (``nodes.common.as_comfy_image`` where it
  exists, else ``to_comfy_image``);

and ``extra`` = the row's host time minus the patch-free one's: what tiling itself costs. ``--baseline-rev REV``
runs the same rows against the package as it was at git revision ``REV`` (``git archive`` into a temporary folder,
imported in a subprocess), for a before/after ratio in one run; ``--baseline-tar FILE`` takes such an archive
where there is no git (``benchmarks/device_bundle.sh`` packs one for the GPU machine). Noise: the ``torch`` stream, whose CPU cost is the
same in every version (the default counter stream is computed on the GPU where there is one).

    python benchmarks/gtasr_tiled_host.py --baseline-rev 7e90593   # 1024² -> 4096², this version and 7e90593
    python benchmarks/gtasr_tiled_host.py --device cuda --baseline-tar .devbundle/baseline.tar   # on a GPU
    python benchmarks/gtasr_tiled_host.py --smoke --no-write         # tests: 128² -> 512², tiles 64 / 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import add_output_arguments, environment, publish, results_section

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("patch-free", "tiled", "tiled + preview", "patch-free → IMAGE", "tiled + preview → IMAGE")


def measure(lr_px: int, tile: int, overlap: int, repeats: int, device: str = "cpu") -> list[dict[str, Any]]:
    """Median wall and stand-in network seconds of each variant, with the ``sr4k`` package importable now and the
    stand-in on ``device`` (the image on the host, as the node and the CLI hand it)."""
    from sr4k.gtasr_core import GTASRNet, upscale
    from sr4k.gtasr_core.config import TINY
    from sr4k.nodes import common
    from sr4k.nodes.gtasr_preview import TilePreview

    to_image = getattr(common, "as_comfy_image", common.to_comfy_image)  # what this version's node calls

    class StandIn(GTASRNet):
        """The real class (scale, LR multiple, checks) with a forward that only writes its HR-size output."""

        network_s = 0.0

        def forward(self, x: torch.Tensor, sigma: object, lq: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            out = torch.zeros_like(x)
            StandIn.network_s += time.perf_counter() - t0
            return out

    net = StandIn(TINY).eval().to(device)
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    comfy_lr = lr.movedim(1, -1).contiguous().movedim(-1, 1)  # an IMAGE as the node sees it
    preview = TilePreview()
    kwargs: dict[str, dict[str, Any]] = {
        "patch-free": {"tile": None, "allow_tile_fallback": False},
        "tiled": {"tile": tile, "overlap": overlap},
        "tiled + preview": {"tile": tile, "overlap": overlap, "on_tile": preview.paste},
    }
    kwargs["patch-free → IMAGE"] = kwargs["patch-free"]
    kwargs["tiled + preview → IMAGE"] = kwargs["tiled + preview"]
    rows = []
    for variant in VARIANTS:
        walls, nets, converts = [], [], []
        node = variant.endswith("IMAGE")
        for i in range(repeats + 1):  # the first call warms the allocator up and is not counted
            preview.start(lr, net.scale)
            StandIn.network_s = 0.0
            t0 = time.perf_counter()
            out = upscale(net, comfy_lr if node else lr, seed=i, noise="torch", **kwargs[variant])
            t1 = time.perf_counter()
            image = to_image(out) if node else None
            t2 = time.perf_counter()
            # whether the IMAGE is the core's result itself (no copy on the host)
            no_copy = image is not None and image.data_ptr() == out.data_ptr()
            del out, image
            if i:
                walls.append(t2 - t0)
                nets.append(StandIn.network_s)
                converts.append(t2 - t1)
        wall, network = statistics.median(walls), statistics.median(nets)
        row = {"variant": variant, "wall_s": wall, "network_s": network, "host_s": wall - network}
        if node:
            row |= {"to_image_s": statistics.median(converts), "image_is_the_result": no_copy}
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def measure_at(archive: bytes, args: argparse.Namespace) -> list[dict[str, Any]]:
    """:func:`measure` against the package in ``archive`` (a ``git archive`` tarball), in a subprocess that imports
    it from a temporary copy."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "sr4k"
        tree.mkdir()
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        out = Path(tmp) / "rows.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])}
        worker = [
            sys.executable,
            __file__,
            "--worker",
            str(out),
            "--lr",
            str(args.lr),
            "--tile",
            str(args.tile),
        ]
        worker += ["--overlap", str(args.overlap), "--repeats", str(args.repeats), "--device", args.device]
        subprocess.run(worker, env=env, check=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", type=int, default=1024, help="LR side in pixels (output: 4x)")
    p.add_argument("--tile", type=int, default=512, help="LR tile side (released: 512)")
    p.add_argument("--overlap", type=int, default=64, help="LR overlap (released: 64)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row after one warm-up; the median")
    p.add_argument("--device", default="cpu", help="where the stand-in network runs (cpu, cuda)")
    base = p.add_mutually_exclusive_group()
    base.add_argument("--baseline-rev", help="also time the package as it was at this git revision")
    base.add_argument("--baseline-tar", type=Path, help="also time the package in this `git archive` tarball")
    p.add_argument(
        "--smoke", action="store_true", help="128² -> 512² with tiles of 64 / 16, one repeat (tests)"
    )
    p.add_argument(
        "--worker", type=Path, help=argparse.SUPPRESS
    )  # measure_at's subprocess: rows to this JSON
    add_output_arguments(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.lr, args.tile, args.overlap, args.repeats = 128, 64, 16, 1
    if args.worker is not None:
        import sr4k

        assert Path(sr4k.__file__).parent != REPO, "the worker must import the copy, not this checkout"
        args.worker.write_text(
            json.dumps(measure(args.lr, args.tile, args.overlap, args.repeats, args.device))
        )
        return {}
    from roofline import commit  # imports sr4k: not in the worker, which measures another copy of it

    versions = {"this": measure(args.lr, args.tile, args.overlap, args.repeats, args.device)}
    if args.baseline_rev:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline_rev], capture_output=True, check=True
        ).stdout
        versions[f"@{args.baseline_rev}"] = measure_at(archive, args)
    elif args.baseline_tar:
        versions[f"@{args.baseline_tar.stem}"] = measure_at(args.baseline_tar.read_bytes(), args)
    this_host = {r["variant"]: r["host_s"] for r in versions["this"]}
    table = []
    for version, rows in versions.items():
        host = {r["variant"]: r["host_s"] for r in rows}
        for r in rows:
            # against the same version's patch-free row (of the same kind: core call, or the node's IMAGE in and out)
            base = host["patch-free → IMAGE" if r["variant"].endswith("IMAGE") else "patch-free"]
            mine = this_host.get(r["variant"])
            table.append(
                [
                    version,
                    r["variant"],
                    f"{r['wall_s']:.3f}",
                    f"{r['network_s']:.3f}",
                    f"{r['host_s']:.3f}",
                    "-" if r["variant"].startswith("patch-free") else f"{r['host_s'] - base:.3f}",
                    f"{r['to_image_s']:.3f}" if "to_image_s" in r else "-",
                    "-" if mine is None else f"{r['host_s'] / mine:.2f}",
                ]
            )
    env = environment(torch.device("cpu"))
    n = args.lr * 4
    text = results_section(
        f"Host cost of GTASR runs, tiled and as IMAGE (issue #11): benchmarks/gtasr_tiled_host.py ({env['date']}, commit "
        f"{args.commit or commit()})",
        [
            f"Machine: {env['device']}"
            + (
                ""
                if args.device == "cpu"
                else f"; stand-in on {environment(torch.device(args.device))['device']}"
            )
            + f"; torch {torch.__version__}",
            f"LR {args.lr}² -> HR {n}², float32, image on the host, tiles {args.tile} / overlap {args.overlap} (LR px); a "
            "stand-in network (GTASRNet whose forward writes a zero HR tile) timed apart; torch noise stream; "
            f"median of {args.repeats} after a warm-up",
            "host s = wall - network; extra = host s - the same version's patch-free host s of the same kind (core call, "
            "or the node's IMAGE in and out): what tiling costs; to IMAGE s = the node's conversion of the result "
            "to an IMAGE, within host s; / this = host s over this version's",
        ],
        ["version", "variant", "wall s", "network s", "host s", "extra s", "to IMAGE s", "/ this"],
        table,
    )
    publish(text, versions, results=args.results, no_write=args.no_write, json_path=args.json)
    return {"text": text, "versions": versions}


if __name__ == "__main__":
    main()
