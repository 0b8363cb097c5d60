"""Registry and Manager metadata: pyproject fields the Comfy Registry reads, the archive ``.comfyignore``
leaves, and ``requirements.txt`` = what the nodes import.

The registry fields are the ones comfy-cli's ``registry/config_parser.py`` reads (``requires-comfyui`` in
``[tool.comfy]``, ``[project.urls]``, accelerator classifiers); the archive is what its ``zip_files`` packs:
git-tracked files minus the ``.comfyignore`` patterns (gitignore syntax, evaluated here by git itself).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_harness import REPO
from project_file import pyproject, requirements

# The ComfyUI version scripts/test_env.sh installs: the floor the pack is tested on.
TESTED_COMFYUI = "0.3.75"


def test_registry_fields() -> None:
    data = pyproject()
    project, comfy = data["project"], data["tool"]["comfy"]
    assert comfy["requires-comfyui"] == f">={TESTED_COMFYUI}"
    # comfy-cli's validate_version: [operator]major.minor.patch, comma-separated parts.
    assert all(
        re.fullmatch(r"(==|>=|<=|!=|~=|>|<)?\d+\.\d+\.\d+", p.strip())
        for p in comfy["requires-comfyui"].split(",")
    )
    urls = project["urls"]
    for key in ("Repository", "Documentation", "Bug Tracker", "Issues"):
        assert re.fullmatch(r"https://\S+", urls.get(key, "")), f"[project.urls] {key} missing"
    assert urls["Bug Tracker"] == urls["Issues"]
    # Any "Environment :: GPU/NPU" classifier restricts the Manager's accelerator list; the pack runs on all.
    assert not [c for c in project.get("classifiers", []) if c.startswith("Environment ::")]


def test_node_list_json_is_an_object_of_one_line_descriptions() -> None:
    listed = json.loads((REPO / "node_list.json").read_text())
    assert isinstance(listed, dict) and listed, (
        "ComfyUI-Manager reads node_list.json as {node_id: description}"
    )
    for node_id, desc in listed.items():
        assert re.fullmatch(r"(SR4K|GTASR|OP4KSR)_[A-Za-z0-9]+", node_id), node_id
        assert isinstance(desc, str) and 10 <= len(desc) <= 120 and "\n" not in desc, (node_id, desc)


def _module_imports(path: Path) -> tuple[set[str], set[Path]]:
    """Third-party top-level modules and pack files (relative imports, with their packages' ``__init__``)."""
    third, local = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            third |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            third.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            target = base.joinpath(*node.module.split(".")) if node.module else base
            names = [target] if node.module else [target / a.name for a in node.names]
            for t in names:
                local |= {p for p in (t.with_suffix(".py"), t / "__init__.py") if p.is_file()}
            while base != REPO and base.is_relative_to(REPO):  # importing a.b runs a/__init__.py first
                local |= {base / "__init__.py"} if (base / "__init__.py").is_file() else set()
                base = base.parent
    return third - set(sys.stdlib_module_names) - {"__future__"}, local


def _imported_by_the_nodes() -> set[str]:
    """Third-party modules imported (at any level, lazily too) by every module ComfyUI's nodes reach."""
    todo, seen, third = [*(REPO / "nodes").glob("*.py"), REPO / "__init__.py"], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        mods, local = _module_imports(path)
        third |= mods
        todo += local - seen
    return third


# Import name -> distribution name; comfy, comfy_api, folder_paths are ComfyUI itself.
DISTRIBUTION = {"PIL": "pillow", "huggingface_hub": "huggingface-hub"}
COMFYUI_ITSELF = {"comfy", "comfy_api", "folder_paths", "comfy_execution", "server", "nodes"}


def test_requirements_txt_is_what_the_nodes_import() -> None:
    imported = _imported_by_the_nodes() - COMFYUI_ITSELF
    wanted = {DISTRIBUTION.get(m, m) for m in imported}
    assert set(requirements((REPO / "requirements.txt").read_text().splitlines())) == wanted
    assert "diffusers" not in wanted  # only the headless path (op4ksr_core.flux_loader) imports it
    extras = pyproject()["project"]["optional-dependencies"]
    assert "diffusers" in requirements(extras["cli"]) and "diffusers" in requirements(extras["train"])


def _archive_files() -> list[str]:
    def git(*args: str) -> list[str]:
        out = subprocess.run(
            ["git", *args, "-z"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        return [f for f in out.split("\0") if f]

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the registry archive is built from git-tracked files")
    ignored = set(git("ls-files", "--cached", "--ignored", "--exclude-from=.comfyignore"))
    includes = pyproject()["tool"]["comfy"].get("includes", [])
    return [
        f
        for f in git("ls-files")
        if f not in ignored or any(f.startswith(i.rstrip("/") + "/") for i in includes)
    ]


def test_comfyignore_keeps_the_pack_and_drops_development_files() -> None:
    files = _archive_files()
    tops = {f.split("/", 1)[0] for f in files}
    assert not tops & {"tests", "training", "benchmarks", "scripts", ".ci"}, sorted(tops)
    for needed in ("__init__.py", "node_list.json", "pyproject.toml", "requirements.txt", "README.md"):
        assert needed in files
    assert {"nodes", "op4ksr_core", "gtasr_core", "srkit", "web", "example_workflows"} <= tops
    kept = set(files)
    # Every relative import of a kept module resolves to a kept module (or package).
    for name in (f for f in files if f.endswith(".py")):
        for node in ast.walk(ast.parse((REPO / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = Path(name).parent
                for _ in range(node.level - 1):
                    base = base.parent
                target = base / (node.module or "").replace(".", "/") if node.module else base
                ok = f"{target}.py" in kept or f"{target}/__init__.py" in kept
                assert ok, f"{name} imports {'.' * node.level}{node.module or ''}, left out of the archive"
