"""Renamed nodes: keep old node ids working in saved workflows, through ComfyUI's node-replacement API.

Newer ComfyUI versions have ``io.NodeReplace`` and ``ComfyAPI().node_replacement.register(...)``: registered
in the extension's ``on_load``, the frontend then offers to swap an old node in a loaded workflow for its
successor, rewiring inputs and outputs. ComfyUI 0.3.75 (our test fixture) has neither, so registration is
guarded and does nothing there. Policy (``docs/artists.md``): a released node id is never reused for a
different node; a rename adds a row to :data:`RENAMES` in the same commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

NODE_ID = re.compile(r"(SR4K|OP4KSR|GTASR)_[A-Za-z0-9]+")


@dataclass(frozen=True)
class Rename:
    """One released node id replaced by another.

    ``inputs``: (new input, old input) pairs where a name changed; same-named inputs need no pair.
    ``outputs``: (new index, old index) pairs where output order changed.
    ``version``: the pack version that made the change (shown to nobody; for the changelog).
    """

    old_node_id: str
    new_node_id: str
    version: str
    inputs: tuple[tuple[str, str], ...] = ()
    outputs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for node_id in (self.old_node_id, self.new_node_id):
            if not NODE_ID.fullmatch(node_id):
                raise ValueError(
                    f"node id {node_id!r} must be a pack id like 'SR4K_Name', 'OP4KSR_Name', 'GTASR_Name'"
                )
        if self.old_node_id == self.new_node_id:
            raise ValueError(f"rename of {self.old_node_id!r} to itself; drop the row")
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.version):
            raise ValueError(f"version={self.version!r} must be the X.Y.Z release that renamed the node")

    def replace_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``io.NodeReplace``: only the ones this rename needs, so older API shapes work."""
        kwargs: dict[str, Any] = {"new_node_id": self.new_node_id, "old_node_id": self.old_node_id}
        if self.inputs:
            kwargs["input_mapping"] = [{"new_id": new, "old_id": old} for new, old in self.inputs]
        if self.outputs:
            kwargs["output_mapping"] = [{"new_idx": new, "old_idx": old} for new, old in self.outputs]
        return kwargs


RENAMES: tuple[Rename, ...] = ()
"""Every rename since 0.1.0 (none yet: 0.1.0 is the first release)."""


def check_renames(renames: Iterable[Rename], node_ids: Iterable[str]) -> None:
    """Raise ``ValueError`` unless each rename leads from a retired id to a registered one, once."""
    current = set(node_ids)
    seen: set[str] = set()
    for r in renames:
        if r.new_node_id not in current:
            raise ValueError(f"{r.old_node_id} -> {r.new_node_id}: the new id is not a registered node")
        if r.old_node_id in current:
            raise ValueError(f"{r.old_node_id} is still registered; a retired id cannot also be a live node")
        if r.old_node_id in seen:
            raise ValueError(f"{r.old_node_id} is renamed twice; point the old row at the newest id instead")
        seen.add(r.old_node_id)


async def register_renames(
    renames: Iterable[Rename] = RENAMES, io_module: Any = None, api: Any = None
) -> int:
    """Register ``renames`` with ComfyUI's node-replacement API; returns how many were registered.

    0 (and nothing touched) when this ComfyUI has no ``io.NodeReplace`` / ``node_replacement``, as 0.3.75.
    ``io_module`` and ``api`` default to ``comfy_api.latest.io`` and ``ComfyAPI()``.
    """
    renames = tuple(renames)
    if not renames:
        return 0
    if io_module is None:
        from comfy_api.latest import io as io_module
    node_replace = getattr(io_module, "NodeReplace", None)
    if node_replace is None:
        log.debug("sr4k: this ComfyUI has no io.NodeReplace; %d node rename(s) not registered", len(renames))
        return 0
    if api is None:
        from comfy_api.latest import ComfyAPI

        api = ComfyAPI()
    registry = getattr(api, "node_replacement", None)
    if registry is None:
        return 0
    for rename in renames:
        await registry.register(node_replace(**rename.replace_kwargs()))
    return len(renames)
