"""The pack installs the way ComfyUI-Manager and the registry expect."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from comfy_harness import REPO, ComfyServer
from project_file import pyproject, requirements


def test_requirements_txt_equals_pyproject_dependencies() -> None:
    project = pyproject()["project"]
    reqs = requirements((REPO / "requirements.txt").read_text().splitlines())
    deps = requirements(project["dependencies"])
    # torch: bare in requirements.txt (no version there can make pip replace a user's CUDA build; the floor is
    # checked at load, tests/unit/test_torch_support.py); pyproject states the floor for headless installs.
    assert reqs.pop("torch") == "torch" and deps.pop("torch").startswith("torch>=")
    assert reqs == deps


def test_pyproject_has_what_the_registry_needs() -> None:
    data = pyproject()
    project = data["project"]
    assert project["name"] == "sr4k"
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"] and project["license"] and project["requires-python"]
    assert project["urls"]["Repository"]
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["Icon"]


def test_root_package_imports_without_comfyui_and_exposes_only_the_v3_entrypoint() -> None:
    # A fresh interpreter: other tests may have put ComfyUI's tree on this process's sys.path.
    code = (
        "import importlib, sr4k\n"
        "assert callable(sr4k.comfy_entrypoint)\n"
        "assert not hasattr(sr4k, 'NODE_CLASS_MAPPINGS')\n"  # it would make ComfyUI ignore the entrypoint
        "import sr4k.srkit, sr4k.gtasr_core, sr4k.op4ksr_core\n"
        "try:\n    importlib.import_module('sr4k.nodes.extension')\n"
        "except ModuleNotFoundError as e:\n    assert 'comfy' in str(e)\n"
        "else:\n    raise AssertionError('nodes imported without ComfyUI?')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO.parent)


@pytest.mark.comfy
def test_node_list_json_equals_the_registered_ids(comfy_server: ComfyServer) -> None:
    info = comfy_server.get_json("/object_info")
    ours = {k for k, v in info.items() if v.get("python_module", "").endswith("custom_nodes.sr4k")}
    listed = json.loads((REPO / "node_list.json").read_text())  # {node_id: one-line description}
    assert isinstance(listed, dict)
    assert ours == set(listed)
    assert all(k.startswith(("SR4K_", "GTASR_", "OP4KSR_")) for k in ours)
