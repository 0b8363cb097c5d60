"""The repository's ``pyproject.toml``, parsed: ``tomllib`` on Python 3.11+, its backport ``tomli`` on 3.10 (the
``test`` extra installs it there), so the suite runs on every Python the pack supports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

__all__ = ["pyproject"]

REPO = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    """``pyproject.toml`` as a dict."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())
