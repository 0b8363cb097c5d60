"""ComfyUI imported in this process, with the pack loaded by ComfyUI's own custom-node loader (for benchmarks).

``start_comfy`` puts a ComfyUI tree on ``sys.path`` (CPU mode if asked), points its folders at a scratch
directory and loads this repository as the custom node ``sr4k_pack`` through ``nodes.load_custom_node``, the
function ComfyUI's start-up uses, so the node classes are the ones a server would register.
``UnloadLog`` records ComfyUI unloading a given model while a benchmark runs.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACK = "sr4k_pack"  # the pack's folder name under custom_nodes; its module is not ``sr4k`` (no clash)


@dataclass
class Comfy:
    """The ComfyUI modules a benchmark calls, the loaded pack and ComfyUI's version."""

    nodes: ModuleType  # ComfyUI's nodes.py (NODE_CLASS_MAPPINGS)
    mm: ModuleType  # comfy.model_management
    folder_paths: ModuleType
    pack: ModuleType  # this repository as ComfyUI imported it
    version: str

    def node(self, node_id: str) -> Any:
        """The class ComfyUI registered for ``node_id``."""
        return self.nodes.NODE_CLASS_MAPPINGS[node_id]

    def pack_module(self, name: str) -> ModuleType:
        """A submodule of the loaded pack, e.g. ``"nodes.op4ksr_patch"``."""
        return sys.modules[f"{self.pack.__name__}.{name}"]


def start_comfy(comfy_dir: Path, scratch: Path, *, cpu: bool) -> Comfy:
    """Import ComfyUI from ``comfy_dir`` and load the pack from ``REPO`` (see the module docstring)."""
    if not (comfy_dir / "comfy" / "model_management.py").is_file():
        raise SystemExit(
            f"no ComfyUI tree at {comfy_dir} (give --comfy-dir; see benchmarks/device_bundle.sh)"
        )
    sys.path.insert(0, str(comfy_dir))
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    import comfy.model_management as mm
    import folder_paths

    for name in ("input", "output", "temp", "models", "custom_nodes"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    folder_paths.set_input_directory(str(scratch / "input"))
    folder_paths.set_output_directory(str(scratch / "output"))
    folder_paths.set_temp_directory(str(scratch / "temp"))
    import nodes

    link = scratch / "custom_nodes" / PACK
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    loaded = nodes.load_custom_node(str(link))
    if inspect.isawaitable(loaded):
        loaded = asyncio.run(loaded)
    if not loaded or "OP4KSR_Upscale" not in nodes.NODE_CLASS_MAPPINGS:
        raise SystemExit(f"ComfyUI did not load the pack from {link} (see the log above)")
    try:
        import comfyui_version

        version = comfyui_version.__version__
    except ImportError:
        version = "unknown"
    # ComfyUI names the module after the folder (older) or its whole path (0.3.75+): find it by its file.
    init = str(link / "__init__.py")
    pack = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == init)
    return Comfy(nodes, mm, folder_paths, pack, version)


def add_model_folder(comfy: Comfy, kind: str, folder: Path) -> None:
    """Make ``folder`` the first ComfyUI model folder of ``kind`` (e.g. ``gtasr``)."""
    folder.mkdir(parents=True, exist_ok=True)
    comfy.folder_paths.add_model_folder_path(kind, str(folder), is_default=True)


@dataclass
class UnloadLog:
    """Unloads of one model by ComfyUI's memory manager (``LoadedModel.model_unload``, full or partial)."""

    events: list[str] = field(default_factory=list)


@contextmanager
def watch_unloads(comfy: Comfy, model: Any) -> Iterator[UnloadLog]:
    """Record ComfyUI unloading ``model`` (a ModelPatcher or any clone of it) inside the block.

    Every unload ComfyUI decides (``free_memory``, ``unload_all_models``) goes through
    ``LoadedModel.model_unload``; it is wrapped for the block and restored after.
    """
    log, cls = UnloadLog(), comfy.mm.LoadedModel
    original = cls.model_unload
    target = model.model  # clones share the torch module

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.model, "model", None) is target:
            log.events.append(f"model_unload{args or ''}{kwargs or ''}")
        return original(self, *args, **kwargs)

    cls.model_unload = recording
    try:
        yield log
    finally:
        cls.model_unload = original


def fully_loaded(comfy: Comfy, model: Any) -> bool:
    """Whether ComfyUI holds ``model``'s weights wholly on its device right now."""
    for loaded in comfy.mm.current_loaded_models:
        patcher = loaded.model
        if getattr(patcher, "model", None) is model.model:
            return patcher.loaded_size() >= patcher.model_size() - 1
    return False
