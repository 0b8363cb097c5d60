"""Every method citation in the code (``docs/op4ksr.md §3.2``, ``docs/gtasr.md Appendix B``) names a section that
exists in the repo's docs, and nothing points outside the repo for them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITE = re.compile(r"docs/(op4ksr|gtasr)\.md(?:`|``)?,? (§\d+(?:\.\d+)?|Appendix [A-Z])")


def _sections(doc: str) -> set[str]:
    """'§3', '§3.2', 'Appendix D' for the headings of docs/<doc>.md."""
    found = set()
    for line in (ROOT / "docs" / f"{doc}.md").read_text().splitlines():
        if m := re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line):
            found.add("§" + m.group(1))
        elif m := re.match(r"## (Appendix [A-Z]):", line):
            found.add(m.group(1))
    return found


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.py", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [ROOT / f for f in out.stdout.split()]


def test_every_method_citation_names_an_existing_section() -> None:
    sections = {doc: _sections(doc) for doc in ("op4ksr", "gtasr")}
    assert {"§3.2", "§9.3", "Appendix D"} <= sections["op4ksr"] and {"§2.1", "§5", "Appendix B"} <= sections[
        "gtasr"
    ]
    missing, cited = [], 0
    for path in _tracked_text_files():
        for doc, section in CITE.findall(path.read_text()):
            cited += 1
            if section not in sections[doc]:
                missing.append(f"{path.relative_to(ROOT)}: docs/{doc}.md {section}")
    assert cited > 40 and not missing, missing


def test_method_docs_are_cited_by_their_repo_path_only() -> None:
    stray = re.compile(r"shared/docs/(op4ksr|gtasr)\.md|(?<![/\w])(op4ksr|gtasr)\.md|docs (op4ksr|gtasr)\.md")
    bad = [
        str(p.relative_to(ROOT))
        for p in _tracked_text_files()
        if p.parent.name != "docs" or p.stem not in ("op4ksr", "gtasr")
        if stray.search(p.read_text())
    ]
    assert not bad, f"cite the method docs as docs/op4ksr.md §N or docs/gtasr.md §N in {bad}"
