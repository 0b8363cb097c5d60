"""pyproject's setuptools package list names every package folder, so a wheel (and a Manager install) has them all."""

from __future__ import annotations

from comfy_harness import REPO
from project_file import pyproject


def test_every_package_folder_is_listed() -> None:
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    skip = {"tests", ".cache", ".git", "web", "workflows", "docs", "scripts", "benchmarks"}
    found = {"sr4k"} | {
        "sr4k." + ".".join(init.parent.relative_to(REPO).parts)
        for init in REPO.rglob("__init__.py")
        if init.parent != REPO and init.relative_to(REPO).parts[0] not in skip
    }
    assert found == listed, (
        f"missing from pyproject: {sorted(found - listed)}; not folders: {sorted(listed - found)}"
    )
