"""GTASR's noise field eps (two streams, both device-independent) and the network's memory layout."""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import Tensor, nn

from ..srkit.counter_normal import counter_normal
from ..srkit.layout import relayout_

__all__ = [
    "DEFAULT_NOISE",
    "NOISE_KINDS",
    "NoiseKind",
    "clear_noise_cache",
    "noise_field",
    "noise_kind",
    "set_layout",
]

NoiseKind = Literal["counter", "torch"]
NOISE_KINDS: tuple[str, ...] = ("counter", "torch")
# "counter" since the "torch" stream costs a new seed 0.3-0.6 s of one CPU core at 4K, more than half of GTASR's
# GPU time (H200: 1.21 s against 0.82 s per image), and ComfyUI draws a new seed for every run by default.
DEFAULT_NOISE: NoiseKind = "counter"

# The last "torch" field, keyed by (seed, shape): a folder of same-size images or a ComfyUI queue with a fixed
# seed draws the 50 M CPU values of a 4K field (~0.6 s, single-threaded) once. Kept in ordinary host memory and
# copied to the device per call (~20 ms at 4K): a cached copy on the GPU (201 MB at 4K, 3.2 GB at 16K) would
# outlive the node that made it, where ComfyUI's memory management can neither see nor free it.
_CACHE: dict[tuple[int, tuple[int, ...]], Tensor] = {}
_CACHE_MAX_VALUES = 64 * 2**20  # 256 MB of float32: a 4096² RGB field is cached, a 16K one (3.2 GB) is not


def noise_kind(value: str) -> NoiseKind:
    """``value`` as a :data:`NoiseKind`, or a ValueError naming the choices (for callers that take it as text)."""
    if value in NOISE_KINDS:
        return cast(NoiseKind, value)
    raise ValueError(f"noise={value!r}: choose one of {', '.join(NOISE_KINDS)}")


def noise_field(
    shape: tuple[int, ...],
    seed: int,
    kind: NoiseKind = DEFAULT_NOISE,
    device: torch.device | str = "cpu",
    compute: torch.device | str | None = None,
) -> Tensor:
    """Standard normal float32 field of ``shape`` on ``device`` for ``seed``, the same bits on every device.

    "counter" (default): :func:`srkit.counter_normal.counter_normal`, computed on ``compute`` (default
    ``device``; a GPU, or the CPU for the CPU and for accelerators without float64), e.g. on the GPU for a field
    that stays on the host. "torch": ``torch.randn`` from a CPU ``torch.Generator`` (the default stream before
    "counter", kept to reproduce those images), copied to the device (for a device other than the CPU
    the last field is cached on the host); ``compute`` does not apply.
    """
    device = torch.device(device)
    if noise_kind(kind) == "counter":
        return counter_normal(shape, seed, device, compute=compute)
    if device.type == "cpu":  # no cache: on the CPU a kept field would add to the network's own peak
        return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
    key = (int(seed), tuple(shape))
    eps = _CACHE.get(key)
    if eps is None:
        _CACHE.clear()  # drop the old field before drawing the new one
        eps = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        if eps.numel() <= _CACHE_MAX_VALUES:
            _CACHE[key] = eps
    return eps.to(device)


def clear_noise_cache() -> None:
    """Free the cached host noise field."""
    _CACHE.clear()


def set_layout(net: nn.Module, channels_last: bool) -> nn.Module:
    """All 4-D weights of ``net`` in channels_last (or back to contiguous), in place; cheap when already so."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for p in net.parameters():
        if p.ndim == 4:
            relayout_(p, fmt)
    return net
