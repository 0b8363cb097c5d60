"""``--device`` / ``--dtype`` choices of the CLI resolved to torch objects."""

from __future__ import annotations

import torch

__all__ = ["DEVICES", "DTYPES", "resolve_device", "resolve_dtype"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU. An unavailable explicit choice is a clear error."""
    if name not in DEVICES:
        raise ValueError(f"--device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but this torch build sees no CUDA GPU; use --device cpu (or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps, but Apple MPS is not available; use --device cpu (or auto)")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it (GTASR was trained in fp32; bf16 keeps its range), else fp32."""
    if name not in DTYPES:
        raise ValueError(f"--dtype {name!r}; choose one of {', '.join(DTYPES)}")
    chosen = DTYPES[name]
    if chosen is not None:
        return chosen
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
