"""The torch floor: parsed right, stated once, and below it the pack refuses to load with one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from comfy_harness import REPO
from project_file import pyproject, requirements
from sr4k.srkit.torch_support import MIN_TORCH, torch_release, unsupported_torch_message


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("2.6.0", (2, 6)),
        ("2.6.0+cu124", (2, 6)),
        ("2.10.0a0+git1a2b3c", (2, 10)),  # two-digit minor: compared as numbers, not strings
        ("2.13.0+cpu", (2, 13)),
        ("1.13.1", (1, 13)),
    ],
)
def test_torch_release_parses_pip_and_source_builds(version: str, release: tuple[int, int]) -> None:
    assert torch_release(version) == release


@pytest.mark.parametrize("version", ["2.6.0", "2.6.0a0+git", "2.10.0", "2.11.0+cu130", "3.0.0"])
def test_supported_releases_get_no_message(version: str) -> None:
    assert unsupported_torch_message(version) is None


@pytest.mark.parametrize("version", ["2.5.1+cu124", "2.4.0", "2.1.2", "1.13.1"])
def test_older_releases_are_told_what_to_do(version: str) -> None:
    message = unsupported_torch_message(version)
    assert message is not None
    assert (
        f"torch {version}" in message and "PyTorch 2.6 or newer" in message and "restart ComfyUI" in message
    )


def test_an_unreadable_version_is_not_refused() -> None:
    assert unsupported_torch_message("custom-build") is None


def test_this_torch_is_supported() -> None:
    assert torch_release(torch.__version__) >= MIN_TORCH


def test_pyproject_states_the_same_floor() -> None:
    # requirements.txt names torch bare (tests/server/test_packaging.py): the floor lives here and in pyproject.
    deps = requirements(pyproject()["project"]["dependencies"])
    assert deps["torch"] == "torch>=" + ".".join(map(str, MIN_TORCH))


def _with_torch_2_4(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose torch reports 2.4.1 (the only stand-in here: one venv holds one
    torch; real releases are covered by the torch lanes of scripts/test.sh, README Development)."""
    prog = "import sys, torch\ntorch.__version__ = '2.4.1+cu121'\n" + code
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, cwd=REPO.parent)


def test_an_old_torch_stops_comfyui_loading_the_pack_with_the_message_and_nothing_loaded() -> None:
    done = _with_torch_2_4(
        "import asyncio, sr4k\n"
        "try:\n    asyncio.run(sr4k.comfy_entrypoint())\n"
        "except RuntimeError as e:\n    print('REFUSED', e)\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(('sr4k.nodes', 'sr4k.gtasr_core', "
        "'sr4k.op4ksr_core'))))\n"
    )
    assert done.returncode == 0, done.stderr
    assert "REFUSED sr4k needs PyTorch 2.6 or newer, and this Python has torch 2.4.1+cu121" in done.stdout
    assert "restart ComfyUI" in done.stdout and "LOADED []" in done.stdout, done.stdout


def test_an_old_torch_stops_the_cli_with_the_message(tmp_path: Path) -> None:
    done = _with_torch_2_4(
        f"from sr4k.cli.main import main\nraise SystemExit(main(['convert', {str(tmp_path / 'a.pth')!r}, 'b']))\n"
    )
    assert done.returncode == 2, done.stderr
    assert (
        "sr4k: error: sr4k needs PyTorch 2.6 or newer, and this Python has torch 2.4.1+cu121" in done.stderr
    )
    assert "pytorch.org" in done.stderr
