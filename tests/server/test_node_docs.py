"""In-app help: a page per node in ``web/docs/<NodeId>.md``, served where frontend 1.32.9 looks for it.

The frontend (``NodeHelpService.fetchCustomNodeHelp``) takes the pack folder from the node's
``python_module`` (``custom_nodes.<folder>``) and fetches ``/extensions/<folder>/docs/<NodeId>/<locale>.md``,
then ``/extensions/<folder>/docs/<NodeId>.md``; ComfyUI serves ``WEB_DIRECTORY`` at ``/extensions/<folder>/``.
"""

from __future__ import annotations

import json
import re

import pytest

from comfy_harness import PACK_NAME, REPO, ComfyServer

DOCS = REPO / "web" / "docs"


def _node_ids() -> list[str]:
    return json.loads((REPO / "node_list.json").read_text())


def _section(page: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", page, flags=re.S | re.M)
    assert match, f"no '## {title}' section"
    return match.group(1)


def _table_names(section: str) -> set[str]:
    """The `names` in the first column of a Markdown table."""
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


def test_every_node_has_a_help_page_and_no_page_is_orphaned() -> None:
    ids = _node_ids()
    missing = [i for i in ids if not (DOCS / f"{i}.md").is_file()]
    assert not missing, f"add web/docs/<id>.md for {missing}"
    orphans = sorted({p.stem for p in DOCS.glob("*.md")} - set(ids))
    assert not orphans, f"help pages for ids not in node_list.json: {orphans}"


def test_web_directory_is_the_folder_holding_the_docs() -> None:
    source = (REPO / "__init__.py").read_text()
    match = re.search(r'^WEB_DIRECTORY = "([^"]+)"', source, flags=re.M)
    assert match, "the root __init__.py must set WEB_DIRECTORY"
    assert (REPO / match.group(1) / "docs").resolve() == DOCS.resolve()


@pytest.mark.comfy
@pytest.mark.parametrize("node_id", _node_ids())
def test_help_page_documents_the_schema_and_is_served(comfy_server: ComfyServer, node_id: str) -> None:
    info = comfy_server.get_json(f"/object_info/{node_id}")[node_id]
    # Description and tooltips: what the frontend shows on hover, without opening the help page.
    assert info["description"], f"{node_id} has no description"
    inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    for name, spec in inputs.items():
        assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert all(info["output_tooltips"]), f"{node_id} has an output without a tooltip"
    # The page: titled with the display name, one table row per input and per output.
    page = (DOCS / f"{node_id}.md").read_text()
    assert page.startswith(f"# {info['display_name']}\n"), (
        f"{node_id}.md must start with '# {info['display_name']}'"
    )
    assert _table_names(_section(page, "Inputs")) == set(inputs), f"{node_id}.md inputs != the schema's"
    assert _table_names(_section(page, "Outputs")) == set(info["output_name"]), f"{node_id}.md outputs differ"
    # Served at the URL the frontend builds from python_module.
    assert info["python_module"] == f"custom_nodes.{PACK_NAME}"
    served = comfy_server.get_bytes(f"/extensions/{PACK_NAME}/docs/{node_id}.md")
    assert served == (DOCS / f"{node_id}.md").read_bytes()


@pytest.mark.comfy
def test_the_pack_web_extension_is_listed_for_the_frontend(comfy_server: ComfyServer) -> None:
    scripts = comfy_server.get_json("/extensions")
    ours = sorted(s for s in scripts if s.startswith(f"/extensions/{PACK_NAME}/"))
    expected = sorted(
        f"/extensions/{PACK_NAME}/{p.relative_to(REPO / 'web')}" for p in (REPO / "web").rglob("*.js")
    )
    assert ours == expected and ours, ours


def test_the_registry_icon_named_in_pyproject_is_shipped_and_small_enough() -> None:
    from PIL import Image

    from project_file import pyproject

    url = pyproject()["tool"]["comfy"]["Icon"]
    path = REPO / url.split("/main/", 1)[1]
    assert path.is_file(), f"{url} points at {path}, which is missing"
    with Image.open(path) as icon:
        assert icon.width <= 800 and icon.height <= 400, icon.size  # the registry's limit
