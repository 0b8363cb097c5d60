"""Import ComfyUI's own modules (the 0.3.75 tree in ``.cache/comfyui``) as references for tests.

Tests that use it are marked ``@pytest.mark.comfy``. The tree is looked up in ``$SR4K_COMFYUI_DIR``,
then ``$SR4K_COMFY_TREE``, then ``$SR4K_COMFY_WORK/ComfyUI``, then ``<repo>/.cache/comfyui/ComfyUI`` (made by
``scripts/test_env.sh``). Missing tree: skip locally, fail in CI (where it is always prepared).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def comfy_dir() -> Path:
    """Folder holding ComfyUI's ``comfy`` package (it may not exist)."""
    for var in ("SR4K_COMFYUI_DIR", "SR4K_COMFY_TREE"):
        if os.environ.get(var):
            return Path(os.environ[var])
    work = Path(os.environ.get("SR4K_COMFY_WORK", REPO / ".cache" / "comfyui"))
    return work / "ComfyUI"


def import_comfy() -> ModuleType:
    """Put the ComfyUI tree on ``sys.path`` in CPU mode and return the ``comfy`` package.

    ``comfy.model_management`` probes the GPU at import; forcing ``args.cpu`` first keeps the
    reference computations on the CPU with a CPU-only torch, as ComfyUI's own unit tests do.
    """
    root = comfy_dir()
    if not (root / "comfy" / "ldm" / "flux" / "math.py").is_file():
        reason = f"ComfyUI tree not found at {root} (run `bash scripts/test_env.sh` or set SR4K_COMFYUI_DIR)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = True
    import comfy.ldm.flux.layers
    import comfy.ldm.flux.model
    import comfy.ops

    return comfy


def comfy_flux(**kwargs: object):
    """ComfyUI's own ``Flux`` module built from FLUX.1-style ``kwargs``, on any ComfyUI version.

    Fields that newer versions made required get FLUX.1's values when absent: ``txt_ids_dims=[]``
    (0.33+: text tokens sit at position 0 on every axis, as FLUX.1 places them).
    """
    import dataclasses

    comfy = import_comfy()
    from comfy.ldm.flux.model import Flux, FluxParams

    fields = {f.name for f in dataclasses.fields(FluxParams)}
    if "txt_ids_dims" in fields:
        kwargs.setdefault("txt_ids_dims", [])
    kwargs.setdefault("operations", comfy.ops.disable_weight_init)
    return Flux(**kwargs)


def bfl_for_comfy_flux(model: object, state_dict: dict) -> dict:
    """A BFL-layout FLUX state dict keyed as ``model`` (a ComfyUI ``Flux``) names its parameters.

    ComfyUI 0.33 builds QKNorm from RMSNorm (``*_norm.weight``) and renames the files' ``*_norm.scale``
    on load (``supported_models.Flux.process_unet_state_dict``); 0.3.75 keeps ``.scale``.
    """
    own = set(model.state_dict())  # type: ignore[attr-defined]
    out = {}
    for key, value in state_dict.items():
        if key not in own and key.endswith("_norm.scale") and key[: -len("scale")] + "weight" in own:
            key = key[: -len("scale")] + "weight"
        out[key] = value
    return out
