"""Every repository file named in the README, docs/ and the code's docstrings exists (files move; their mentions rot).

CHANGELOG.md is left out on purpose: it records where things used to be.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP = "tests|benchmarks|nodes|srkit|op4ksr_core|gtasr_core|training|cli|scripts|docs|example_workflows"
PATH = re.compile(rf"(?<![\w/.])((?:{TOP})/[\w./-]*\w\.(?:py|md|sh|json|toml))")
PLACEHOLDER = re.compile(
    r"/(NAME|FILE|PATH)\."
)  # e.g. example_workflows/api/NAME.json: a pattern, not a file


def mentioned_paths(text: str) -> list[str]:
    return [p for p in PATH.findall(text) if not PLACEHOLDER.search(p)]


def test_the_pattern_finds_paths_and_skips_placeholders() -> None:
    text = "see `tests/unit/test_x.py`, benchmarks/RESULTS.md and example_workflows/api/NAME.json; not a/tests/y.py"
    assert mentioned_paths(text) == ["tests/unit/test_x.py", "benchmarks/RESULTS.md"]


def test_every_mentioned_repository_file_exists() -> None:
    sources = [REPO / "README.md", *REPO.glob("docs/*.md")]
    sources += [
        p
        for p in REPO.rglob("*.py")
        if not {".cache", ".git", "build"} & set(p.relative_to(REPO).parts) and p != Path(__file__).resolve()
    ]  # this file's own examples are not mentions
    missing = {
        f"{path} (in {src.relative_to(REPO)})"
        for src in sources
        for path in mentioned_paths(src.read_text(encoding="utf-8", errors="replace"))
        if not (REPO / path).exists()
    }
    assert not missing, "files named but not in the repository:\n" + "\n".join(sorted(missing))
