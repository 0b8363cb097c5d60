"""sr4k: patch-free 4K super-resolution nodes for ComfyUI.

ComfyUI loads this folder as a package and calls :func:`comfy_entrypoint` (the V3 API). Nothing
here imports ComfyUI at import time, so the package also imports in tests, the CLI and training.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]

# Served at /extensions/<pack folder>/: in-app node help (docs/<NodeId>.md) and the pack's frontend scripts (js/).
WEB_DIRECTORY = "./web"


async def comfy_entrypoint() -> Any:
    """Return the pack's ``ComfyExtension`` (imported lazily: only ComfyUI has ``comfy_api``). Below the oldest
    supported torch it raises one ``RuntimeError`` that says what to update, before any node module loads
    (ComfyUI's console: "Error while calling comfy_entrypoint in .../sr4k: <the message>", and sr4k is in its
    IMPORT FAILED list; tests/server/test_torch_floor.py)."""
    from .srkit.torch_support import require_supported_torch

    require_supported_torch()
    from .nodes.extension import SR4KExtension

    return SR4KExtension()
