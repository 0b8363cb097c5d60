"""Developer tool: (re)create UI-format workflows from their API twins with the real frontend.

    .cache/comfyui/venv/bin/python tests/support/make_ui_workflows.py example_workflows/api/color_correct.json [...]

Writes ``example_workflows/<name>.json`` laid out by the frontend, with the model lists (top-level ``models``
and each loader's ``properties.models``) kept from an existing UI file. Review and hand-tune positions afterwards if needed; the browser test
checks that each UI file converts back to its API twin.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from comfy_harness import REPO, start_server, stop_server
from frontend import api_to_ui, open_app


def main(paths: list[str]) -> None:
    server = start_server(Path(tempfile.mkdtemp()))
    try:
        with open_app(server.url) as page:
            for p in paths:
                api = json.loads(Path(p).read_text())
                ui = api_to_ui(page, api)
                target = REPO / "example_workflows" / Path(p).name
                if target.exists():
                    old = json.loads(target.read_text())
                    if "models" in old:
                        ui["models"] = old["models"]
                    # Each loader's own list, by node id (the frontend checks it against the widget value).
                    props = {
                        n["id"]: n["properties"]["models"]
                        for n in old["nodes"]
                        if "models" in n.get("properties", {})
                    }
                    for node in ui["nodes"]:
                        if node["id"] in props:
                            node.setdefault("properties", {})["models"] = props[node["id"]]
                target.write_text(json.dumps(ui, indent=2) + "\n")
                print(f"wrote {target}")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main(sys.argv[1:])
