"""Fixtures of the OP4KSR node tests, shared by several test files (the tiny FLUX and F16 VAE in the server)."""

from __future__ import annotations

import pytest

from comfy_harness import ComfyServer
from tiny_models import OP4KSR_LR_SIZE, install_op4ksr_models

__all__ = ["models", "small"]

LR_W, LR_H = OP4KSR_LR_SIZE


@pytest.fixture(scope="module")
def models(comfy_server: ComfyServer) -> ComfyServer:
    """The server with the tiny OP4KSR models installed."""
    install_op4ksr_models(comfy_server)
    return comfy_server


def small(prompt: dict, long_side: int = 128) -> dict:
    """An API prompt of the OP4KSR workflows shrunk to a ``long_side`` output (fast on the CPU)."""
    for node in prompt.values():
        if node["class_type"] == "OP4KSR_Upscale":
            node["inputs"]["long_side"] = long_side
        if node["class_type"] == "ImageScale":
            node["inputs"]["width"], node["inputs"]["height"] = long_side, long_side * LR_H // LR_W
    return prompt
