"""Renamed nodes: keep old node ids working in saved workflows, through ComfyUI's node-replacement API.

Newer ComfyUI versions (0.33 is tested) have ``io.NodeReplace`` and ``ComfyAPI().node_replacement.register``:
registered in the extension's ``on_load``, the frontend offers to swap an old node in a loaded workflow for its
successor, and ``/prompt`` swaps it in API graphs. Both copy only what the replacement lists: an input without
an ``input_mapping`` entry is dropped (the server) and a widget value is found only through ``old_widget_ids``,
the old node's widget order in ``widgets_values`` (the frontend). So every input of the new node gets a pair
(an identity pair when its name did not change) and the widget order is always sent. ComfyUI 0.3.75 has
neither API, so registration is guarded and does nothing there. Policy (``docs/artists.md``): a released node
id is never reused for a different node; a rename adds a row to :data:`RENAMES` in the same commit.
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

    ``inputs``: (new input, old input) pairs where a name changed; same-named inputs get identity pairs.
    ``outputs``: (new index, old index) pairs where output order changed.
    ``version``: the pack version that made the change (shown to nobody; for the changelog).
    ``old_widget_ids``: the old node's widget order as saved in ``widgets_values`` (one entry per saved
        value), when it differs from the new node's with ``inputs`` renamed back; default: derived.
    """

    old_node_id: str
    new_node_id: str
    version: str
    inputs: tuple[tuple[str, str], ...] = ()
    outputs: tuple[tuple[int, int], ...] = ()
    old_widget_ids: tuple[str, ...] | None = None

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

    def replace_kwargs(self, new_interface: NodeInterface) -> dict[str, Any]:
        """Keyword arguments of ``io.NodeReplace`` for this rename, given the new node's interface.

        Every input of the new node is mapped (to its old name, or to itself), so nothing is dropped; the
        old widget order comes from :attr:`old_widget_ids` or, by default, the new node's widget order with
        renamed inputs given their old names.
        """
        old_name = dict(self.inputs)
        unknown = sorted(set(old_name) - set(new_interface.inputs))
        if unknown:
            raise ValueError(
                f"{self.old_node_id} -> {self.new_node_id}: {unknown} are not inputs of the new node"
            )
        widgets = self.old_widget_ids
        if widgets is None:
            widgets = tuple(old_name.get(w, w) for w in new_interface.widgets)
        kwargs: dict[str, Any] = {
            "new_node_id": self.new_node_id,
            "old_node_id": self.old_node_id,
            "old_widget_ids": list(widgets),
            "input_mapping": [{"new_id": i, "old_id": old_name.get(i, i)} for i in new_interface.inputs],
        }
        if self.outputs:
            kwargs["output_mapping"] = [{"new_idx": new, "old_idx": old} for new, old in self.outputs]
        return kwargs


@dataclass(frozen=True)
class NodeInterface:
    """A node's input ids in schema order, and its widget values' order as a saved workflow stores them.

    ``widgets`` has one entry per ``widgets_values`` slot: a widget input's id, followed by
    ``"<id>.control_after_generate"`` where the frontend adds its control value (never an input id).
    """

    inputs: tuple[str, ...]
    widgets: tuple[str, ...]


WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


def node_interface(node_class: Any) -> NodeInterface:
    """The interface of a registered node class, from its ``INPUT_TYPES()`` (what ``/object_info`` serves)."""
    spec = node_class.INPUT_TYPES()
    inputs: list[str] = []
    widgets: list[str] = []
    for section in ("required", "optional"):
        for name, entry in (spec.get(section) or {}).items():
            inputs.append(name)
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if (isinstance(kind, list) or kind in WIDGET_TYPES) and not opts.get("forceInput"):
                widgets.append(name)
                if opts.get("control_after_generate"):
                    widgets.append(f"{name}.control_after_generate")
    return NodeInterface(tuple(inputs), tuple(widgets))


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
    renames: Iterable[Rename] = RENAMES,
    node_classes: Iterable[Any] = (),
    io_module: Any = None,
    api: Any = None,
) -> int:
    """Register ``renames`` with ComfyUI's node-replacement API; returns how many were registered.

    ``node_classes``: the registered node classes (each rename's new node is looked up among them by
    ``GET_SCHEMA().node_id`` for its interface). 0 (and nothing touched) when this ComfyUI has no
    ``io.NodeReplace`` / ``node_replacement``, as 0.3.75. ``io_module`` and ``api`` default to
    ``comfy_api.latest.io`` and ``ComfyAPI()``.
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
    classes = {c.GET_SCHEMA().node_id: c for c in node_classes}
    for rename in renames:
        if rename.new_node_id not in classes:
            raise ValueError(
                f"{rename.old_node_id} -> {rename.new_node_id}: the new id is not among node_classes"
            )
        await registry.register(
            node_replace(**rename.replace_kwargs(node_interface(classes[rename.new_node_id])))
        )
    return len(renames)
