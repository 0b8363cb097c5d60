"""Node renames: the table is consistent with the registered ids, and registration is guarded by version."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from comfy_harness import REPO
from sr4k.nodes.renames import RENAMES, Rename, check_renames, register_renames

IDS = ["SR4K_ColorCorrect", "OP4KSR_Upscale"]


def test_the_shipped_table_leads_from_retired_ids_to_registered_nodes() -> None:
    check_renames(RENAMES, json.loads((REPO / "node_list.json").read_text()))


@pytest.mark.parametrize(
    ("rename", "message"),
    [
        (Rename("SR4K_ColourCorrect", "SR4K_Missing", "0.2.0"), "the new id is not a registered node"),
        (Rename("OP4KSR_Upscale", "SR4K_ColorCorrect", "0.2.0"), "is still registered"),
    ],
)
def test_inconsistent_renames_are_rejected(rename: Rename, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_renames([rename], IDS)


def test_an_id_renamed_twice_is_rejected() -> None:
    twice = [Rename("SR4K_Old", "SR4K_ColorCorrect", "0.2.0"), Rename("SR4K_Old", "OP4KSR_Upscale", "0.3.0")]
    with pytest.raises(ValueError, match="renamed twice"):
        check_renames(twice, IDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ColorCorrect", "SR4K_ColorCorrect", "0.2.0"), "must be a pack id"),
        (("SR4K_ColorCorrect", "SR4K_ColorCorrect", "0.2.0"), "to itself"),
        (("SR4K_Old", "SR4K_ColorCorrect", "next"), "X.Y.Z"),
    ],
)
def test_bad_rows_are_rejected(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rename(*args)


def _pack_nodes() -> list:
    from comfy_tree import import_comfy

    import_comfy()
    from sr4k.nodes.extension import NODES
    from sr4k.nodes.folders import register_folders

    register_folders()  # the loaders' schemas list the pack's model folders
    return list(NODES)


@pytest.mark.comfy
def test_without_a_node_replacement_api_registration_is_a_no_op() -> None:
    nodes = _pack_nodes()
    from comfy_api.latest import io

    if hasattr(io, "NodeReplace"):
        pytest.skip(
            "this ComfyUI has node replacement; tests/server/test_node_replace.py checks its real registry"
        )
    rows = [Rename("SR4K_ColourCorrect", "SR4K_ColorCorrect", "0.2.0", inputs=(("image", "images"),))]
    assert asyncio.run(register_renames(rows, nodes)) == 0
    assert asyncio.run(register_renames(RENAMES, nodes)) == 0


@pytest.mark.comfy
def test_node_interface_lists_widgets_in_saved_order() -> None:
    from sr4k.nodes.renames import node_interface

    by_id = {c.GET_SCHEMA().node_id: c for c in _pack_nodes()}
    colour = node_interface(by_id["SR4K_ColorCorrect"])
    assert colour.inputs == ("image", "reference", "method", "strength")
    assert colour.widgets == ("method", "strength")  # IMAGE sockets hold no widget value
    gtasr = node_interface(by_id["GTASR_Upscale"])
    assert gtasr.inputs[:2] == ("gtasr_model", "image")
    seed = gtasr.widgets.index("seed")
    assert gtasr.widgets[seed + 1] == "seed.control_after_generate"


@pytest.mark.comfy
def test_with_a_node_replacement_api_each_rename_is_registered_with_its_mapping() -> None:
    """What ``register_renames`` hands to ``io.NodeReplace`` and ``node_replacement.register``: stand-ins
    record the calls (the argument names are those of ComfyUI 0.33's ``io.NodeReplace``); the real registry
    and frontend are exercised by tests/server/test_node_replace.py on a ComfyUI that has them."""
    nodes = _pack_nodes()

    class NodeReplace:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class Registry:
        def __init__(self) -> None:
            self.registered: list[dict[str, Any]] = []

        async def register(self, replace: NodeReplace) -> None:
            self.registered.append(replace.kwargs)

    class IO:
        pass

    IO.NodeReplace = NodeReplace  # type: ignore[attr-defined]
    registry = Registry()
    api = type("API", (), {"node_replacement": registry})()
    rows = [
        Rename("SR4K_ColourCorrect", "SR4K_ColorCorrect", "0.2.0"),
        Rename(
            "SR4K_ColorCorrectOld",
            "SR4K_ColorCorrect",
            "0.2.0",
            inputs=(("strength", "amount"),),
            outputs=((0, 1),),
            old_widget_ids=("amount", "method"),
        ),
    ]
    assert asyncio.run(register_renames(rows, nodes, io_module=IO, api=api)) == 2
    identity = [{"new_id": i, "old_id": i} for i in ("image", "reference", "method", "strength")]
    assert registry.registered == [
        {
            "new_node_id": "SR4K_ColorCorrect",
            "old_node_id": "SR4K_ColourCorrect",
            "old_widget_ids": ["method", "strength"],
            "input_mapping": identity,
        },
        {
            "new_node_id": "SR4K_ColorCorrect",
            "old_node_id": "SR4K_ColorCorrectOld",
            "old_widget_ids": ["amount", "method"],
            "input_mapping": [*identity[:3], {"new_id": "strength", "old_id": "amount"}],
            "output_mapping": [{"new_idx": 0, "old_idx": 1}],
        },
    ]
    # An API object without node_replacement registers nothing; a rename to an input the node lacks is refused.
    assert asyncio.run(register_renames(rows, nodes, io_module=IO, api=object())) == 0
    bad = [Rename("SR4K_ColourCorrect", "SR4K_ColorCorrect", "0.2.0", inputs=(("amount", "strength"),))]
    with pytest.raises(ValueError, match=r"\['amount'\] are not inputs of the new node"):
        asyncio.run(register_renames(bad, nodes, io_module=IO, api=api))
