"""GTASR's noise field eps (two streams, both device-independent) and the network's memory layout."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..srkit.counter_normal import counter_normal

__all__ = ["NOISE_KINDS", "NoiseKind", "clear_noise_cache", "noise_field", "set_layout"]

NoiseKind = Literal["torch", "counter"]
NOISE_KINDS: tuple[str, ...] = ("torch", "counter")

# The last "torch" field moved to a device, keyed by (seed, shape, device): a folder of same-size images or
# a ComfyUI queue with a fixed seed draws the 50 M CPU values of a 4K field (~0.6 s, single-threaded) once.
_CACHE: dict[tuple[int, tuple[int, ...], str], Tensor] = {}


def noise_field(
    shape: tuple[int, ...], seed: int, kind: NoiseKind = "torch", device: torch.device | str = "cpu"
) -> Tensor:
    """Standard normal float32 field of ``shape`` on ``device`` for ``seed``, the same bits on every device.

    "torch": ``torch.randn`` from a CPU ``torch.Generator`` (the stream of earlier releases), copied to the
    device (the last field per device is cached there). "counter": :func:`srkit.counter_normal.counter_normal`,
    computed on the device itself.
    """
    device = torch.device(device)
    if kind == "counter":
        return counter_normal(shape, seed, device)
    if kind != "torch":
        raise ValueError(f"noise={kind!r}: choose one of {', '.join(NOISE_KINDS)}")
    if device.type == "cpu":
        return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
    key = (int(seed), tuple(shape), str(device))
    if key not in _CACHE:
        _CACHE.clear()  # drop the old field before drawing the new one
        eps = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        _CACHE[key] = (
            eps.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else eps.to(device)
        )
    return _CACHE[key]


def clear_noise_cache() -> None:
    """Free the cached device noise field."""
    _CACHE.clear()


def set_layout(net: nn.Module, channels_last: bool) -> nn.Module:
    """All 4-D weights of ``net`` in channels_last (or back to contiguous), in place; cheap when already so."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for p in net.parameters():
        if p.ndim == 4 and not p.is_contiguous(memory_format=fmt):
            p.data = p.data.contiguous(memory_format=fmt)
    return net
