"""The oldest PyTorch release the pack runs on, and one clear error below it.

``MIN_TORCH`` is the oldest release the whole test suite runs against (README, Development: the torch lanes);
it is also the oldest that ComfyUI's own requirements resolve to today (transformers 5 and kornia 0.9 need torch
2.6 and 2.5.1). The ComfyUI ``requirements.txt`` cannot enforce it: any version there would make a plain ``pip
install -r`` replace the user's CUDA/ROCm build of torch with PyPI's, so it names ``torch`` bare and the pack
checks the version when ComfyUI loads it (``comfy_entrypoint``, before any node module: so for every older torch)
and when the CLI starts (a torch older than 2.3 already fails importing the CLI's modules, which need
``torch.nn.attention``). ``pyproject.toml`` (the headless package, its own environment) states the same floor.
"""

from __future__ import annotations

import re

import torch

__all__ = [
    "CLI_REMEDY",
    "COMFYUI_REMEDY",
    "MIN_TORCH",
    "require_supported_torch",
    "torch_release",
    "unsupported_torch_message",
]

MIN_TORCH: tuple[int, int] = (2, 6)


def torch_release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a torch version string: ``"2.6.0+cu124"`` -> ``(2, 6)``, ``"2.10.0a0+git1a2b"`` ->
    ``(2, 10)`` (a pre-release counts as its release). Raises ``ValueError`` on a string with no ``X.Y``."""
    m = re.match(r"\s*(\d+)\.(\d+)", version)
    if m is None:
        raise ValueError(f"not a torch version: {version!r}")
    return int(m.group(1)), int(m.group(2))


COMFYUI_REMEDY = (
    "Update the PyTorch of this ComfyUI (its README, 'Manual Install': the pip line for your GPU; the portable "
    "build: update/update_comfyui_and_python_dependencies.bat), then restart ComfyUI. sr4k never installs torch "
    "itself, so that your CUDA/ROCm build stays yours."
)
CLI_REMEDY = (
    "Install a newer torch for your GPU (https://pytorch.org/get-started/locally/) in this environment."
)


def unsupported_torch_message(version: str, remedy: str = COMFYUI_REMEDY) -> str | None:
    """What to tell a user whose torch is ``version`` (the problem, then ``remedy``), or ``None`` when it is
    supported or unreadable (a custom build with an odd version string gets the benefit of the doubt)."""
    try:
        release = torch_release(version)
    except ValueError:
        return None
    if release >= MIN_TORCH:
        return None
    need = ".".join(map(str, MIN_TORCH))
    return f"sr4k needs PyTorch {need} or newer, and this Python has torch {version}. {remedy}"


def require_supported_torch(remedy: str = COMFYUI_REMEDY) -> None:
    """Raise ``RuntimeError`` with :func:`unsupported_torch_message` when the running torch is too old."""
    message = unsupported_torch_message(torch.__version__, remedy)
    if message is not None:
        raise RuntimeError(message)
