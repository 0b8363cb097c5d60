"""The repository's ``pyproject.toml`` and requirement lists, parsed: ``tomllib`` on Python 3.11+, its backport
``tomli`` on 3.10 (the ``test`` extra installs it there), so the suite runs on every Python the pack supports."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

__all__ = ["pyproject", "requirements"]

REPO = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    """``pyproject.toml`` as a dict."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def requirements(lines: list[str]) -> dict[str, str]:
    """Requirement lines (``requirements.txt`` or a pyproject list) by normalised package name -> the line without
    spaces; comments and blank lines skipped. ``["torch>=2.6", "huggingface_hub"]`` -> ``{"torch": "torch>=2.6",
    "huggingface-hub": "huggingface_hub"}``."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
            out[name] = line.replace(" ", "")
    return out
