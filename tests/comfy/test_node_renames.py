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


@pytest.mark.comfy
def test_on_comfyui_0_3_75_registration_is_a_no_op() -> None:
    from comfy_tree import import_comfy

    import_comfy()
    from comfy_api.latest import io

    # 0.3.75 has no node-replacement API; when the test fixture moves to a version that has it, this fails
    # and the next test should be replaced by one against the real registry.
    assert not hasattr(io, "NodeReplace")
    rows = [Rename("SR4K_ColourCorrect", "SR4K_ColorCorrect", "0.2.0", inputs=(("image", "images"),))]
    assert asyncio.run(register_renames(rows)) == 0
    assert asyncio.run(register_renames(RENAMES)) == 0


def test_with_a_node_replacement_api_each_rename_is_registered_with_its_mapping() -> None:
    """What ``register_renames`` hands to ``io.NodeReplace`` and ``node_replacement.register`` on a ComfyUI
    that has them. The stand-ins record the calls; the argument names are those of ComfyUI's documented
    API (docs.comfy.org custom-nodes/backend/node-replacement). This does not prove that newer ComfyUI
    accepts them: no such ComfyUI is in the test environment."""

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
            "OP4KSR_UpscaleOld", "OP4KSR_Upscale", "0.2.0", inputs=(("long_side", "size"),), outputs=((0, 1),)
        ),
    ]
    assert asyncio.run(register_renames(rows, io_module=IO, api=api)) == 2
    assert registry.registered == [
        {"new_node_id": "SR4K_ColorCorrect", "old_node_id": "SR4K_ColourCorrect"},
        {
            "new_node_id": "OP4KSR_Upscale",
            "old_node_id": "OP4KSR_UpscaleOld",
            "input_mapping": [{"new_id": "long_side", "old_id": "size"}],
            "output_mapping": [{"new_idx": 0, "old_idx": 1}],
        },
    ]
    # An API object without node_replacement registers nothing.
    assert asyncio.run(register_renames(rows, io_module=IO, api=object())) == 0
