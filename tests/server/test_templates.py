"""The bundled workflows as ComfyUI templates: listed, served with a thumbnail, and carrying their model lists.

ComfyUI 0.3.75 (``app/custom_node_manager.py``) lists ``<pack>/{example_workflows,example,examples,workflow,
workflows}/*.json`` at ``/api/workflow_templates`` and serves those folders at
``/api/workflow_templates/<pack folder>/``; frontend 1.32.9 shows each under Workflow -> Browse Templates with
the thumbnail ``<name>.jpg``. Our UI workflows live in ``example_workflows/`` (their API twins in
``example_workflows/api/`` and the example inputs in ``example_workflows/inputs/`` are not listed: the glob is
not recursive), so no copy is needed. The last test opens the real dialog.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfy_harness import PACK_NAME, REPO, ComfyServer
from workflow_files import WORKFLOWS, api_workflow, ui_workflows

MODEL_SUFFIXES = (".safetensors", ".sft", ".gguf", ".pth", ".pt", ".ckpt", ".bin")
# Which models/ folder each loader input reads (ComfyUI core loaders and ours).
INPUT_FOLDERS = {
    "unet_name": "diffusion_models",
    "vae_name": "vae",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "lora_name": "loras",
    "ckpt_name": "checkpoints",
}
CLASS_INPUT_FOLDERS = {
    ("GTASR_LoadModel", "model_name"): "gtasr",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
}


def _model_files(api: dict[str, Any]) -> dict[str, str]:
    """Model file name -> models/ folder, for every loader input of an API-format workflow."""
    found = {}
    for node in api.values():
        for name, value in node["inputs"].items():
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
                folder = CLASS_INPUT_FOLDERS.get((node["class_type"], name), INPUT_FOLDERS.get(name))
                assert folder, f"{node['class_type']}.{name} = {value!r}: add its models/ folder to this test"
                found[value] = folder
    return found


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.stem)
def test_workflow_lists_every_model_it_loads_with_a_download_url(path: Path) -> None:
    ui = json.loads(path.read_text())
    assert isinstance(ui.get("models"), list), f"{path.name} has no top-level 'models' list"
    listed = {}
    for entry in ui["models"]:
        assert {"name", "url", "directory"} <= entry.keys(), f"{path.name}: incomplete models entry {entry}"
        assert re.fullmatch(r"https://huggingface\.co/[^ ]+/resolve/main/[^ ]+", entry["url"]), entry["url"]
        assert entry["url"].endswith("/" + entry["name"]), f"{entry['name']} does not match its url"
        listed[entry["name"]] = entry["directory"]
    assert listed == _model_files(api_workflow(path.stem)), f"{path.name}: models list != the files it loads"


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.stem)
def test_every_loader_node_carries_the_models_it_loads(path: Path) -> None:
    """Newer frontends read each node's ``properties.models`` (and match it against the widget value) to offer
    the download of a missing file; the union of the nodes' lists is the top-level list."""
    ui = json.loads(path.read_text())
    top = {m["name"]: m for m in ui["models"]}
    seen = {}
    for node in ui["nodes"]:
        values = {v for v in node.get("widgets_values") or [] if isinstance(v, str) and v in top}
        listed = node.get("properties", {}).get("models", [])
        assert {m["name"] for m in listed} == values, f"{path.name}: {node['type']} lists {listed}"
        for m in listed:
            assert m == top[m["name"]], f"{path.name}: {node['type']} entry differs from the top-level one"
            seen[m["name"]] = m
    assert seen == top, f"{path.name}: top-level models no loader node uses: {set(top) - set(seen)}"


def test_every_workflow_has_a_small_square_jpeg_thumbnail() -> None:
    for path in ui_workflows():
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{thumb.name} missing; run tests/support/make_template_thumbnails.py"
        assert thumb.stat().st_size < 100_000, f"{thumb.name} is {thumb.stat().st_size} bytes; keep it small"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and im.size[0] == im.size[1] >= 256, (im.format, im.size)
    strays = {p.stem for p in WORKFLOWS.glob("*.jpg")} - {p.stem for p in ui_workflows()}
    assert not strays, f"thumbnails without a workflow: {sorted(strays)}"


def test_every_model_of_the_workflows_is_in_the_artists_guide() -> None:
    guide = (REPO / "docs" / "artists.md").read_text()
    for path in ui_workflows():
        for entry in json.loads(path.read_text())["models"]:
            assert entry["name"] in guide and entry["url"] in guide, f"docs/artists.md lacks {entry['name']}"


@pytest.mark.comfy
def test_server_lists_every_workflow_and_serves_it_with_its_thumbnail(comfy_server: ComfyServer) -> None:
    listed = comfy_server.get_json("/api/workflow_templates")
    stems = sorted(p.stem for p in ui_workflows())
    assert sorted(listed.get(PACK_NAME, [])) == stems, listed
    for stem in stems:
        # The URLs frontend 1.32.9 builds (useTemplateWorkflows: fetchTemplateJson, getTemplateThumbnailUrl).
        served = json.loads(comfy_server.get_bytes(f"/api/workflow_templates/{PACK_NAME}/{stem}.json"))
        assert served == json.loads((WORKFLOWS / f"{stem}.json").read_text())
        jpg = comfy_server.get_bytes(f"/api/workflow_templates/{PACK_NAME}/{stem}.jpg")
        assert jpg == (WORKFLOWS / f"{stem}.jpg").read_bytes()
        Image.open(io.BytesIO(jpg)).verify()


@pytest.mark.comfy
@pytest.mark.browser
def test_browse_templates_shows_every_workflow_with_its_thumbnail(comfy_server: ComfyServer) -> None:
    from frontend import chromium_path, open_app

    if chromium_path() is None:
        pytest.skip("Debian chromium not installed (scripts/test_env.sh installs it as root)")
    stems = sorted(p.stem for p in ui_workflows())
    with open_app(comfy_server.url) as page:
        fetched: list[str] = []
        page.on(
            "response",
            lambda r: (
                fetched.append(r.url) if r.ok and f"/workflow_templates/{PACK_NAME}/" in r.url else None
            ),
        )
        page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
        page.get_by_text(PACK_NAME, exact=True).first.click()  # the pack's entry under "Extensions"
        page.wait_for_function(
            # PrimeVue dialog (frontend 1.32) or a role=dialog panel (1.49); thumbnails may be blob: copies.
            f"() => [...document.querySelectorAll('.p-dialog img, [role=dialog] img')]"
            f".filter(i => i.complete && i.naturalWidth > 0)"
            f".length >= {len(stems)}",
            timeout=30_000,
        )
        for stem in stems:
            assert page.get_by_text(stem, exact=True).count() >= 1, f"no template card titled {stem}"
        page.keyboard.press("Escape")
    thumbs = sorted(Path(u.split("?")[0]).stem for u in fetched if u.split("?")[0].endswith(".jpg"))
    assert thumbs == stems, fetched
