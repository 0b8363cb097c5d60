"""Memory estimate of a patch-free GTASR upscale (pure arithmetic; the node compares it with free memory).

Both places where a GTASR forward can peak grow with the padded LR pixel count: the nearest-upsampling head
(``model_channels``-wide maps at the HR size) and, with the head in row slabs, the level-0 Swin window
attention (SDPA's math fallback: q, k, v and the scores upcast to fp32, ``benchmarks/peak_memory.py``). So the
working memory is counted in "HR maps" of ``model_channels`` values per HR pixel.

Measured on an NVIDIA H200 (torch 2.11, bf16, released network, ``benchmarks/perf_toggles.py``; working memory =
peak allocated minus allocated before the call, weights excluded):

- whole-image head (``perf`` option ``gtasr_head_rows`` = 0): 25.80 GiB at LR 1024² = 4.2 HR maps ->
  ``HEAD_MAPS`` 5 (+19 %; 2026-11-29 and -30);
- head in 128-row slabs and the window attention 2048 windows at a time (the defaults): 6.67 GiB at LR 1024²
  and 1.84 GiB at LR 512² (0.99 and 1.10 HR maps; 2026-11-30, commit 88e176a; channels_last, the default
  layout, 6.67 and 1.67 GiB) -> ``SLAB_HEAD_MAPS`` 1.25 (+24 % and +12 %). Before the window chunks the slab
  path peaked in the level-0 Swin attention at 11.55 GiB (1.8 maps), as the meta-device count
  (``benchmarks/peak_memory.py``) had said; the count of the chunked path (7.42 GiB) was above the measurement.

Earlier CPU measurements (torch 2.13, fp32, peak RSS, whole head): 3.1-3.5 maps. E.g. 1024x1024 -> 4096x4096
in bf16: 8.25 GiB with the defaults (30.8 GiB with the whole head).
"""

from __future__ import annotations

from ..srkit import perf
from ..srkit.sizing import padded_size
from .model import GTASRNet

__all__ = ["FP32_HR_IMAGES", "HEAD_MAPS", "SLAB_HEAD_MAPS", "upscale_memory"]

HEAD_MAPS = (
    5  # model_channels-wide HR maps alive at the peak, whole head (measured 4.2, see module docstring)
)
SLAB_HEAD_MAPS = 1.25  # the same with the head in row slabs and chunked window attention (measured 0.99-1.10)
FP32_HR_IMAGES = 4  # x_T, its noise, the output and the tiled blend buffer, float32 RGB at HR size


def upscale_memory(net: GTASRNet, h: int, w: int, slabbed_head: bool | None = None) -> int:
    """Bytes of working memory (beyond the weights) to upscale one h x w LR image in one pass.

    ``slabbed_head``: whether the x4 head runs in row slabs (default: as ``srkit.perf`` says now).
    """
    if slabbed_head is None:
        slabbed_head = perf.current().gtasr_head_rows > 0
    cfg = net.config
    ph, pw = padded_size(h, w, net.lr_multiple)
    value_bytes = next(net.parameters()).element_size()
    maps = SLAB_HEAD_MAPS if slabbed_head else HEAD_MAPS
    per_pixel = (
        maps * cfg.model_channels * value_bytes + FP32_HR_IMAGES * cfg.in_channels * 4
    ) * cfg.scale**2
    return int(ph * pw * per_pixel)
