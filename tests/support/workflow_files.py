"""Bundled workflows: the UI-format files users open and their API-format twins the server runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from comfy_harness import REPO

WORKFLOWS = REPO / "workflows"


def ui_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.json"))


def api_workflow(name: str) -> dict[str, Any]:
    """The API twin of ``workflows/<name>.json`` (a fresh copy the test may edit)."""
    return copy.deepcopy(json.loads((WORKFLOWS / "api" / f"{name}.json").read_text()))
