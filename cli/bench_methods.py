"""SR methods that ``sr4k bench --dataset`` runs: bicubic, GTASR (patch-free / tiled), OP4KSR (+/- RFR), folders.

Method names (``--methods`` comma list):
  * ``bicubic``: bicubic interpolation to the HR size;
  * ``gtasr``: GTASR patch-free (one network call per image); ``gtasr-tiled``: the released tiling (512 px LR
    tiles, 64 px overlap = stride 448). GTASR is x4: scales 16, 64, ... run it repeatedly (256 -> 1024 -> 4096);
  * ``op4ksr`` / ``op4ksr-norfr``: the headless OP4KSR path (``op4ksr_core.headless``) with the chosen RFR
    preset / with RFR off, output size = the HR size;
  * ``folder:NAME=DIR``: outputs of any other tool, ``DIR/<stem>.<ext>``, scored as they are.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..gtasr_core import GTASRNet, load_gtasr, upscale
from ..gtasr_core.upscale import DEFAULT_OVERLAP, DEFAULT_TILE
from ..op4ksr_core.flux.forward import set_rfr
from ..op4ksr_core.headless import load_pipeline, upscale_image
from ..op4ksr_core.onestep import OneStepConfig
from ..op4ksr_core.rfr import RFR_PRESETS
from ..op4ksr_core.vae import F16VAE

MODEL_METHODS = ("bicubic", "gtasr", "gtasr-tiled", "op4ksr", "op4ksr-norfr")


@dataclass(frozen=True)
class Method:
    """One entry of ``--methods``: ``kind`` in :data:`MODEL_METHODS` or ``folder`` (then ``folder`` is set)."""

    name: str
    kind: str
    folder: Path | None = None


def parse_methods(spec: str) -> list[Method]:
    """Parse ``bicubic,gtasr,folder:NAME=DIR,...``; ValueError naming a bad entry and the accepted forms."""
    methods: list[Method] = []
    for raw in (s.strip() for s in spec.split(",")):
        if not raw:
            continue
        if raw.startswith("folder:"):
            name, sep, folder = raw[len("folder:") :].partition("=")
            if not sep or not name or not folder:
                raise ValueError(f"method {raw!r}: write folder:NAME=DIR (e.g. folder:realesrgan=out/resr)")
            methods.append(Method(name, "folder", Path(folder)))
        elif raw in MODEL_METHODS:
            methods.append(Method(raw, raw))
        else:
            raise ValueError(
                f"unknown method {raw!r}; choose from {', '.join(MODEL_METHODS)} or folder:NAME=DIR"
            )
    names = [m.name for m in methods]
    if not methods or len(set(names)) != len(names):
        raise ValueError(f"--methods {spec!r} must name at least one method, each once (got {names})")
    return methods


@dataclass
class Models:
    """Weights for the model methods, loaded lazily once (paths from the command line)."""

    gtasr_path: Path | None = None
    flux_path: Path | None = None
    vae_path: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    rfr: str = "ntk"
    onestep: OneStepConfig = field(default_factory=OneStepConfig)
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    seed: int = 0
    decode_mode: str = "auto"  # load_pipeline: metadata, else by the VAE file's key layout
    _gtasr: GTASRNet | None = field(default=None, init=False, repr=False)
    _op4ksr: tuple[torch.nn.Module, F16VAE] | None = field(default=None, init=False, repr=False)

    def check(self, methods: list[Method]) -> None:
        """Fail before any work when a method's weights were not given."""
        kinds = {m.kind for m in methods}
        if kinds & {"gtasr", "gtasr-tiled"} and self.gtasr_path is None:
            raise ValueError(
                "methods gtasr/gtasr-tiled need --gtasr FILE (GTASR_final_phase.pth or .safetensors)"
            )
        if kinds & {"op4ksr", "op4ksr-norfr"} and (self.flux_path is None or self.vae_path is None):
            raise ValueError(
                "methods op4ksr/op4ksr-norfr need --flux FILE (FLUX transformer) and --vae FILE "
                "(FLUX VAE weights, used as the F16 VAE)"
            )
        if self.rfr not in RFR_PRESETS:
            raise ValueError(f"--rfr {self.rfr!r} unknown; choose from {sorted(RFR_PRESETS)}")

    def gtasr(self) -> GTASRNet:
        if self._gtasr is None:
            assert self.gtasr_path is not None
            self._gtasr = load_gtasr(self.gtasr_path, dtype=self.dtype, device=self.device)
        return self._gtasr

    def op4ksr(self) -> tuple[torch.nn.Module, F16VAE]:
        if self._op4ksr is None:
            assert self.flux_path is not None and self.vae_path is not None
            transformer, vae = load_pipeline(
                self.flux_path,
                self.vae_path,
                decode_mode=self.decode_mode,
                dtype=self.dtype,
                device=self.device,
            )
            self._op4ksr = (transformer, vae)
        return self._op4ksr


def gtasr_passes(scale: int, net_scale: int) -> int:
    """How many x``net_scale`` GTASR passes make ``scale`` (16 = two x4 passes); ValueError otherwise."""
    passes = round(math.log(scale, net_scale)) if scale > 1 else 0
    if passes < 1 or net_scale**passes != scale:
        raise ValueError(f"GTASR upscales x{net_scale}; scale {scale} is not a power of {net_scale}")
    return passes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_method(method: Method, lr: Tensor, hr_size: tuple[int, int], models: Models) -> Tensor:
    """Super-resolve one LR image [1, 3, h, w] in [0, 1] to [1, 3, *hr_size] with a model method."""
    if method.kind == "bicubic":
        return F.interpolate(lr.float(), size=hr_size, mode="bicubic", align_corners=False).clamp(0, 1)
    if method.kind in ("gtasr", "gtasr-tiled"):
        net = models.gtasr()
        out = lr.to(models.device)
        tile = models.tile if method.kind == "gtasr-tiled" else None
        for _ in range(gtasr_passes(hr_size[0] // lr.shape[-2], net.scale)):
            out = upscale(
                net,
                out,
                seed=models.seed,
                tile=tile,
                overlap=models.overlap,
                allow_tile_fallback=tile is None,
            )
        return out.float().cpu()
    if method.kind in ("op4ksr", "op4ksr-norfr"):
        transformer, vae = models.op4ksr()
        set_rfr(transformer, RFR_PRESETS["none" if method.kind == "op4ksr-norfr" else models.rfr])
        return upscale_image(transformer, vae, lr.float(), long_side=max(hr_size), config=models.onestep)
    raise ValueError(f"method {method.name} ({method.kind}) has no model to run")


def timed_run(method: Method, lr: Tensor, hr_size: tuple[int, int], models: Models) -> tuple[Tensor, float]:
    """:func:`run_method` and its wall time in seconds (device synchronised)."""
    _sync(models.device)
    start = time.perf_counter()
    out = run_method(method, lr, hr_size, models)
    _sync(models.device)
    seconds = time.perf_counter() - start
    if tuple(out.shape[-2:]) != tuple(hr_size):
        raise RuntimeError(
            f"{method.name} produced {tuple(out.shape[-2:])}, expected {hr_size}; the LR/HR sizes "
            "are not an exact multiple the method supports"
        )
    return out, seconds


def output_dir(out_root: str | os.PathLike[str], method: Method) -> Path:
    """Where a method's outputs go (a folder method's outputs stay where they are)."""
    return method.folder if method.folder is not None else Path(out_root) / method.name
