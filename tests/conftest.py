"""Shared fixtures: the real ComfyUI server (session-wide), the golden-fixture folder, a local model hub.

Helpers shared by several test files live in ``tests/support`` (on the path through pytest's ``pythonpath``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_harness import REPO, ComfyServer, harness_available, start_server, stop_server
from local_hub import LocalHub, serve_hub


def shared_dir() -> Path | None:
    """``shared/`` lies beside the checkout (``../shared``) in CI and sessions, or inside it."""
    for cand in (REPO.parent / "shared", REPO / "shared"):
        if (cand / "fixtures").is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    shared = shared_dir()
    if shared is None:
        pytest.skip("golden fixtures not found (expected ../shared/fixtures beside the checkout)")
    return shared / "fixtures"


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    if not harness_available():
        if os.environ.get("CI"):
            pytest.fail("ComfyUI harness missing in CI: scripts/test_env.sh did not run")
        pytest.skip("ComfyUI harness not prepared; run `bash scripts/test_env.sh`")
    server = start_server(tmp_path_factory.mktemp("comfy"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A local hub; offline mode is switched off for this process only (the server is on loopback)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with serve_hub() as state:
        yield state
