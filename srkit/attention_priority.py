"""SDPA backend priority for the large FLUX attention: cuDNN first on Hopper and newer (issue #11).

Measured (``../shared/tools/gpu_probe.md`` §1, H100, torch 2.11, FLUX.1-dev at OP4KSR's 4K token count): the
transformer takes 0.880 s with cuDNN attention and 1.140 s with flash. torch 2.11 already picks cuDNN there by
default, but other releases put flash first (torch 2.13's default order is flash, efficient, math, cuDNN), which
would cost about 0.26 s per 4K image. :func:`attention_priority` pins the order for one call; the other backends
stay enabled behind cuDNN, so shapes cuDNN refuses still run. Off CUDA, below sm90 (where flash is the better
kernel) or with ``perf.PerfOptions.cudnn_attention_first`` off it does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import perf

__all__ = ["CUDNN_FIRST", "attention_priority", "cudnn_first", "prefers_cudnn"]

CUDNN_FIRST = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]
MIN_CAPABILITY = (9, 0)  # Hopper: where the probe measured cuDNN ahead of flash


def prefers_cudnn(device_type: str, capability: tuple[int, int] | None) -> bool:
    """Whether to put cuDNN attention first on a device of this type and CUDA compute capability."""
    return (
        perf.current().cudnn_attention_first
        and device_type == "cuda"
        and (capability or (0, 0)) >= MIN_CAPABILITY
    )


@contextlib.contextmanager
def cudnn_first() -> Iterator[None]:
    """SDPA's backend priority set to :data:`CUDNN_FIRST` inside the block (restored after). A torch without
    ``sdpa_kernel(..., set_priority=True)`` keeps its own order."""
    try:
        ctx = sdpa_kernel(CUDNN_FIRST, set_priority=True)
    except TypeError:
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def attention_priority(device: torch.device | str) -> contextlib.AbstractContextManager[None]:
    """:func:`cudnn_first` on a CUDA device of compute capability 9.0 or more, else a no-op context."""
    device = torch.device(device)
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return cudnn_first() if prefers_cudnn(device.type, capability) else contextlib.nullcontext()
