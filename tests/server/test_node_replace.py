"""Node renames on a ComfyUI with node replacement (0.33): saved workflows keep their links and values.

The test-only helper pack registers two renames through the pack's own ``register_renames`` in its
``on_load`` (``tests/helper_pack``): ``SR4K_ColourCorrect`` -> ``SR4K_ColorCorrect`` with the widget input
``amount`` renamed to ``strength``, and ``GTASR_UpscaleLegacy`` -> ``GTASR_Upscale`` across a seed widget
(whose saved workflows carry an extra control_after_generate value). ComfyUI 0.3.75 has no node replacement:
there these tests skip, and ``tests/server/test_node_renames.py`` checks that registration is a no-op.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import numpy as np
import pytest
from PIL import Image

from comfy_harness import ComfyServer
from frontend import chromium_path, graph_to_api, load_ui_workflow, node_report, open_app
from workflow_files import api_workflow, ui_workflows

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def replacements(comfy_server: ComfyServer) -> dict[str, Any]:
    try:
        return comfy_server.get_json("/node_replacements")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            pytest.skip("this ComfyUI has no node replacement (0.3.75); see test_node_renames.py")
        raise


def test_every_input_is_mapped_and_the_widget_order_is_sent(replacements: dict[str, Any]) -> None:
    (colour,) = replacements["SR4K_ColourCorrect"]
    assert colour == {
        "new_node_id": "SR4K_ColorCorrect",
        "old_node_id": "SR4K_ColourCorrect",
        "old_widget_ids": ["method", "amount"],
        "input_mapping": [
            {"new_id": "image", "old_id": "image"},
            {"new_id": "reference", "old_id": "reference"},
            {"new_id": "method", "old_id": "method"},
            {"new_id": "strength", "old_id": "amount"},
        ],
        "output_mapping": None,
    }
    (gtasr,) = replacements["GTASR_UpscaleLegacy"]
    widgets = gtasr["old_widget_ids"]
    # The saved control value follows the seed, so later widgets keep their positions.
    assert widgets[widgets.index("seed") + 1] == "seed.control_after_generate"
    mapped = [m["new_id"] for m in gtasr["input_mapping"]]
    assert {"gtasr_model", "image", "seed", "tiling", "tile_size", "overlap"} <= set(mapped)
    assert all(m["old_id"] == m["new_id"] for m in gtasr["input_mapping"])


def _colour_images(server: ComfyServer) -> None:
    rng = np.random.default_rng(3)
    low = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    up = np.array(Image.fromarray(low).resize((64, 48), Image.BICUBIC)).astype(np.int16)
    Image.fromarray(np.clip(up + np.array([30, -20, 10]), 0, 255).astype(np.uint8)).save(
        server.input_dir / "sr4k_example_upscaled.png"
    )
    Image.fromarray(low).save(server.input_dir / "sr4k_example_lowres.png")


def test_an_api_graph_with_the_old_id_runs_with_its_values(
    comfy_server: ComfyServer, replacements: dict[str, Any]
) -> None:
    _colour_images(comfy_server)
    new = api_workflow("color_correct")
    new["3"]["inputs"].update(method="adain", strength=0.35)
    old = api_workflow("color_correct")
    old["3"]["class_type"] = "SR4K_ColourCorrect"
    old["3"]["inputs"] = {"image": ["1", 0], "reference": ["2", 0], "method": "adain", "amount": 0.35}
    (want,) = comfy_server.images(comfy_server.run(new), "4")
    (got,) = comfy_server.images(comfy_server.run(old), "4")
    np.testing.assert_array_equal(got, want)
    new["3"]["inputs"]["strength"] = 1.0
    (full,) = comfy_server.images(comfy_server.run(new), "4")
    assert np.abs(full.astype(int) - got.astype(int)).max() > 2  # 0.35 really reached the node


def _ui(stem: str) -> dict[str, Any]:
    return json.loads(next(p for p in ui_workflows() if p.stem == stem).read_text())


def _retire(ui: dict[str, Any], node_type: str, old_type: str, widget_ids: list[str], values: dict) -> None:
    """Turn ``node_type`` into a node saved under its retired id, with ``values`` at their saved positions."""
    node = next(n for n in ui["nodes"] if n["type"] == node_type)
    node["type"] = old_type
    saved = list(node["widgets_values"])
    for name, value in values.items():
        saved[widget_ids.index(name)] = value
    node["widgets_values"] = saved


@pytest.mark.browser
def test_a_saved_workflow_keeps_links_and_widget_values_through_replace(
    comfy_server: ComfyServer, replacements: dict[str, Any]
) -> None:
    if chromium_path() is None:
        pytest.skip("Debian chromium not installed (scripts/test_env.sh installs it as root)")
    cases = [
        (
            "color_correct",
            "SR4K_ColorCorrect",
            "SR4K_ColourCorrect",
            {"method": "adain", "amount": 0.35},
            {"method": "adain", "strength": 0.35},
        ),
        (
            "gtasr_upscale",
            "GTASR_Upscale",
            "GTASR_UpscaleLegacy",
            {"seed": 123, "tiling": "force", "tile_size": 256, "overlap": 32},
            {"seed": 123, "tiling": "force", "tile_size": 256, "overlap": 32},
        ),
    ]
    with open_app(comfy_server.url) as page:
        for stem, node_type, old_type, saved, expected in cases:
            ui = _ui(stem)
            widget_ids = replacements[old_type][0]["old_widget_ids"]
            _retire(ui, node_type, old_type, widget_ids, saved)
            load_ui_workflow(page, ui)
            page.wait_for_timeout(500)
            assert [n["comfyClass"] for n in node_report(page) if n["type"] == old_type] == [None]
            # What a user does: the errors overlay's "View details", then "Replace All" under Swap Nodes.
            page.get_by_test_id("error-overlay-see-errors").first.click()
            page.get_by_role("button", name="Replace All").first.click()
            page.wait_for_timeout(500)
            nodes = node_report(page)
            assert old_type not in [n["type"] for n in nodes]
            api = graph_to_api(page)
            (node,) = [n for n in api.values() if n["class_type"] == node_type]
            for name, value in expected.items():
                assert node["inputs"][name] == value, (stem, name)
            # Links survive: the API graph equals the bundled twin except for the changed values.
            twin = api_workflow(stem)
            (twin_node,) = [n for n in twin.values() if n["class_type"] == node_type]
            twin_node["inputs"].update(expected)
            assert node["inputs"] == twin_node["inputs"]
