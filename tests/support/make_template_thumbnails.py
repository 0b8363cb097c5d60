"""Developer tool: (re)render the template thumbnails ``workflows/<name>.jpg`` with the real frontend.

    .cache/comfyui/venv/bin/python tests/make_template_thumbnails.py [workflows/<name>.json ...]

ComfyUI lists ``workflows/*.json`` in Workflow -> Browse Templates under the pack's folder name and fetches
``<name>.jpg`` beside each as its thumbnail. Each thumbnail is a screenshot of the graph as the frontend draws
it; workflows that run without model files (``RUNNABLE``) are run first on synthetic inputs, so their
thumbnails show results. Review the images before committing them (keep each well under 100 kB).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from comfy_harness import REPO, ComfyServer, start_server, stop_server
from frontend import load_ui_workflow, open_app

WORKFLOWS = REPO / "workflows"
SIDE = 512  # square, like the core templates' thumbnails
QUALITY = 82


def _compare_artifacts_inputs(server: ComfyServer) -> None:
    from artifact_images import natural, tiled

    for name, image in (("sr4k_example_patch_free.png", natural(1)), ("sr4k_example_tiled.png", tiled(1))):
        Image.fromarray((image * 255 + 0.5).astype("uint8")).save(server.input_dir / name)


RUNNABLE: dict[str, Callable[[ComfyServer], None]] = {"compare_artifacts": _compare_artifacts_inputs}

FIT_SQUARE = """async (margin) => {
    await app.extensionManager.setting.set('Comfy.Minimap.Visible', false);
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const box = (nodes) => ({x0: Math.min(...nodes.map(n => n.pos[0])), y0: Math.min(...nodes.map(n => n.pos[1] - title)),
        x1: Math.max(...nodes.map(n => n.pos[0] + n.size[0])), y1: Math.max(...nodes.map(n => n.pos[1] + n.size[1]))});
    const all = box(app.graph._nodes);
    // The whole graph, centred in a square (wide graphs get bands above and below).
    const side = 1.04 * Math.max(all.x1 - all.x0, all.y1 - all.y0);
    const cx = (all.x0 + all.x1) / 2, cy = (all.y0 + all.y1) / 2;
    const rect = app.canvasEl.getBoundingClientRect();
    const scale = Math.min((Math.min(rect.width, rect.height) - 2 * margin) / side, 1.25);
    const ds = app.canvas.ds;
    ds.scale = scale;
    ds.offset[0] = rect.width / 2 / scale - cx;
    ds.offset[1] = rect.height / 2 / scale - cy;
    app.canvas.setDirty(true, true);
    app.canvas.draw(true, true);
    const s = side * scale;
    return JSON.stringify({x: rect.left + (rect.width - s) / 2, y: rect.top + (rect.height - s) / 2, width: s, height: s});
}"""


def _square(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB").resize((SIDE, SIDE), Image.LANCZOS)


def render(page, server: ComfyServer, path: Path) -> Path:
    load_ui_workflow(page, json.loads(path.read_text()))
    page.wait_for_timeout(500)
    if path.stem in RUNNABLE:
        RUNNABLE[path.stem](server)
        before = len(server.get_json("/history"))
        page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        deadline = time.monotonic() + 300
        while len(server.get_json("/history")) == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path.name} did not finish running:\n{server.log_tail()}")
            time.sleep(0.5)
        page.wait_for_timeout(2000)  # the executed messages and previews reach the page
    page.keyboard.press("Escape")
    clip = json.loads(page.evaluate(FIT_SQUARE, 160))
    page.wait_for_timeout(500)
    target = path.with_suffix(".jpg")
    _square(page.screenshot(clip=clip)).save(target, quality=QUALITY, optimize=True, progressive=True)
    return target


def main(paths: list[str]) -> None:
    files = [Path(p).resolve() for p in paths] or sorted(WORKFLOWS.glob("*.json"))
    server = start_server(Path(tempfile.mkdtemp()))
    try:
        with open_app(server.url) as page:
            page.set_viewport_size({"width": 2600, "height": 2400})  # zoomed out = low-detail nodes
            for path in files:
                target = render(page, server, path)
                print(f"wrote {target} ({target.stat().st_size // 1024} kB)")
    finally:
        stop_server(server)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(sys.argv[1:])
