"""Below the torch floor (srkit/torch_support.py), a real ComfyUI says why the pack did not load, in its console."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comfy_harness import harness_available, start_server, stop_server

pytestmark = pytest.mark.comfy


def test_comfyui_console_says_which_torch_to_install_and_no_sr4k_node_loads(tmp_path: Path) -> None:
    if not harness_available():
        pytest.skip("ComfyUI harness not prepared; run `bash scripts/test_env.sh`")
    # The server's torch reports 2.4.1 from the start (ComfyUI reads the version too, and takes its old-torch
    # paths): one venv holds one torch, so the version string is the stand-in; the torch lanes run real releases.
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text("import torch\ntorch.__version__ = '2.4.1+cu121'\n")
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)
    server = start_server(tmp_path / "comfy", env={"PYTHONPATH": path}, require_pack=False)
    try:
        nodes = server.get_json("/object_info")
        log = server.log_path.read_text()
    finally:
        stop_server(server)
    assert "sr4k needs PyTorch 2.6 or newer, and this Python has torch 2.4.1+cu121" in log, log[-3000:]
    assert "restart ComfyUI" in log
    assert any("IMPORT FAILED" in ln and "sr4k" in ln for ln in log.splitlines()), log[-3000:]
    assert not [n for n in nodes if n.startswith(("OP4KSR_", "GTASR_", "SR4K_"))]
    assert "CheckpointLoaderSimple" in nodes  # ComfyUI itself runs on
