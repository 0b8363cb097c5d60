"""Import ComfyUI's own modules (the 0.3.75 tree in ``.cache/comfyui``) as references for tests.

Tests that use it are marked ``@pytest.mark.comfy``. The tree is looked up in ``$SR4K_COMFYUI_DIR``,
then ``$SR4K_COMFY_WORK/ComfyUI``, then ``<repo>/.cache/comfyui/ComfyUI`` (made by
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
    if os.environ.get("SR4K_COMFYUI_DIR"):
        return Path(os.environ["SR4K_COMFYUI_DIR"])
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
