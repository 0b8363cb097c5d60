"""Fixtures of the OP4KSR node tests, shared by several test files (the tiny FLUX and F16 VAE in the server)."""

from __future__ import annotations

import pytest

from comfy_harness import ComfyServer
from tiny_models import install_op4ksr_models

__all__ = ["models", "small"]


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
        # the exploded graph's bicubic, to the long side (the aspect is kept)
        if node["class_type"] == "ImageScaleToMaxDimension":
            node["inputs"]["largest_size"] = long_side
    return prompt
