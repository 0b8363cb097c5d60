"""The real ComfyUI web frontend (comfyui-frontend-package) in Debian's headless Chromium.

Driven by Playwright for Python with ``executable_path`` (never a Playwright browser download).
Flags and pitfalls: ``../shared/docs/comfyui-harness.md`` section 8.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def chromium_path() -> str | None:
    return shutil.which("chromium")


@contextmanager
def open_app(url: str) -> Iterator[Any]:
    """A page with the ComfyUI app loaded and ready (``window.app`` and its graph exist)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.add_init_script("localStorage.setItem('vueNodesBannerDismissed','true')")
            page.goto(url)
            page.wait_for_function(
                "() => window.app && app.graph && app.canvas && app.extensionManager", timeout=60_000
            )
            yield page
        finally:
            browser.close()


def load_ui_workflow(page: Any, workflow: dict[str, Any]) -> None:
    # Graphs cross the bridge as JSON strings: Playwright turns undefined into null (pitfall 13).
    page.evaluate("async (s) => { await app.loadGraphData(JSON.parse(s)); }", json.dumps(workflow))


def graph_to_api(page: Any) -> dict[str, Any]:
    """The frontend's own UI->API conversion (what "Export (API)" writes)."""
    return json.loads(page.evaluate("async () => JSON.stringify((await app.graphToPrompt()).output)"))


def api_to_ui(page: Any, api: dict[str, Any]) -> dict[str, Any]:
    """Load an API-format graph, lay it out left to right, and return the UI-format workflow."""
    return json.loads(
        page.evaluate(
            """async (s) => {
                await app.loadApiJson(JSON.parse(s), "workflow.json");
                app.graph.arrange(80);
                app.graph.setDirtyCanvas(true, true);
                return JSON.stringify((await app.graphToPrompt()).workflow);
            }""",
            json.dumps(api),
        )
    )


def node_report(page: Any) -> list[dict[str, Any]]:
    """For every node on the canvas: type, class, title, error flag, widget names, and the combo widgets
    whose value is not among their options (a file missing from this ComfyUI's folders)."""
    return json.loads(
        page.evaluate(
            """() => JSON.stringify(app.graph._nodes.map(n => ({
                id: n.id, type: n.type, comfyClass: n.comfyClass ?? null, title: n.title ?? null,
                has_errors: !!n.has_errors, widgets: (n.widgets || []).map(w => w.name),
                missing_values: (n.widgets || []).filter(w => Array.isArray(w.options?.values)
                    && !w.options.values.includes(w.value)).map(w => w.name)})))"""
        )
    )


def broken_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes of an unknown type, or flagged with errors for another reason than a missing file.

    Frontend 1.49 (ComfyUI 0.33) flags nodes whose model or input file is absent at load; a fresh
    ComfyUI has none of a template's models, so that flag alone is not a broken node.
    """
    return [n for n in nodes if n["comfyClass"] is None or (n["has_errors"] and not n["missing_values"])]


def notices(page: Any) -> str:
    """Text of what the frontend shows about a loaded graph's problems: its dialogs (frontend 1.32), or
    the error panel behind the errors overlay's "View details" (1.49)."""
    see_errors = page.get_by_test_id("error-overlay-see-errors")
    if see_errors.count():
        see_errors.first.click()
        page.wait_for_timeout(500)
        return page.evaluate("() => document.body.innerText")
    return page.evaluate(
        "() => [...document.querySelectorAll('.p-dialog, [role=dialog]')].map(d => d.innerText).join('\\n---\\n')"
    )
