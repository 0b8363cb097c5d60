"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtasr_support import tiny_gtasr_files
from perf_pins import nchw_unfused  # noqa: F401 - a fixture for the files that pin the NCHW unfused graph
from sr4k.gtasr_core import GTASRNet


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, GTASRNet]:
    """The tiny GTASR saved as a BasicSR ``.pth`` and a ``.safetensors``, and the network itself."""
    return tiny_gtasr_files(tmp_path_factory.mktemp("weights"))
