"""Every bundled UI workflow in the real frontend (headless Chromium): loads, renders, converts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy_harness import REPO, ComfyServer
from frontend import (
    broken_nodes,
    chromium_path,
    graph_to_api,
    load_ui_workflow,
    node_report,
    notices,
    open_app,
)
from workflow_files import api_workflow, ui_workflows

pytestmark = [pytest.mark.comfy, pytest.mark.browser]
ARTIFACTS = REPO / "test-artifacts" / "browser"
PACK_PREFIXES = ("SR4K_", "GTASR_", "OP4KSR_")
# The frontend's own help nodes: no backend class (comfyClass), not in the API graph; a missing type still
# shows the "missing nodes" dialog checked below.
FRONTEND_NOTES = ("Note", "MarkdownNote")


@pytest.fixture(scope="module")
def page(comfy_server: ComfyServer) -> Any:
    if chromium_path() is None:
        pytest.skip("Debian chromium not installed (scripts/test_env.sh installs it as root)")
    with open_app(comfy_server.url) as page:
        yield page


def _normalise(api: dict[str, Any]) -> dict[str, Any]:
    """Drop titles and make 1 == 1.0, as the UI stores floats with integral values as ints."""

    def norm(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return v
        return float(v)

    return {
        k: {"class_type": n["class_type"], "inputs": {i: norm(v) for i, v in n["inputs"].items()}}
        for k, n in api.items()
    }


def _dialog_text(page: Any) -> str:
    return page.evaluate(
        "() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText).join('\\n---\\n')"
    )


def _check_workflow(page: Any, path: Path) -> list[dict[str, Any]]:
    ui = json.loads(path.read_text())
    load_ui_workflow(page, ui)
    page.wait_for_timeout(300)
    return node_report(page)


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.stem)
def test_workflow_loads_renders_and_converts_to_its_api_twin(page: Any, path: Path) -> None:
    nodes = _check_workflow(page, path)
    # Frontend-only note nodes (the workflow's help text) have no server class and are not missing.
    missing = [
        n["type"]
        for n in broken_nodes(nodes)
        if not (n["comfyClass"] is None and n["type"] in FRONTEND_NOTES)
    ]
    assert not missing, f"missing or broken nodes in {path.name}: {missing}"
    assert "missing nodes" not in _dialog_text(page).lower()
    ours = [n for n in nodes if n["type"].startswith(PACK_PREFIXES)]
    assert ours, f"{path.name} uses none of the pack's nodes"
    for n in ours:
        assert n["title"], f"{n['type']} rendered without a title"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"))
    assert _normalise(graph_to_api(page)) == _normalise(api_workflow(path.stem))


def test_a_workflow_with_a_missing_node_is_caught(page: Any) -> None:
    ui = json.loads(ui_workflows()[0].read_text())
    victim = next(n for n in ui["nodes"] if n["type"].startswith(PACK_PREFIXES))
    victim["type"] = "SR4K_NodeThatDoesNotExist"
    load_ui_workflow(page, ui)
    page.wait_for_timeout(500)
    nodes = node_report(page)
    assert [n["type"] for n in broken_nodes(nodes)] == ["SR4K_NodeThatDoesNotExist"]
    assert "SR4K_NodeThatDoesNotExist" in notices(page)
    page.keyboard.press("Escape")


def test_a_gtasr_workflow_saved_before_the_noise_input_loads_with_the_default(page: Any) -> None:
    """A UI workflow saved before GTASR Upscale had ``noise`` (one widget value fewer) loads in the real frontend
    with every earlier value in its place and ``noise`` at its default, counter."""
    path = next(p for p in ui_workflows() if p.stem == "gtasr_upscale")
    ui = json.loads(path.read_text())
    node = next(n for n in ui["nodes"] if n["type"] == "GTASR_Upscale")
    assert node["widgets_values"][-1] == "counter"
    node["widgets_values"] = node["widgets_values"][:-1]  # as saved before the input existed
    load_ui_workflow(page, ui)
    page.wait_for_timeout(300)
    api = _normalise(graph_to_api(page))
    assert api == _normalise(api_workflow("gtasr_upscale"))
    assert next(n for n in api.values() if n["class_type"] == "GTASR_Upscale")["inputs"]["noise"] == "counter"
