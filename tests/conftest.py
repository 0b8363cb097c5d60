"""Shared fixtures: the real ComfyUI server (session-wide) and the golden-fixture folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_harness import REPO, ComfyServer, harness_available, start_server, stop_server


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
