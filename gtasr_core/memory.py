"""Memory estimate of a patch-free GTASR upscale (pure arithmetic; the node compares it with free memory).

The peak of a GTASR forward is its nearest-upsampling head: ``model_channels``-wide maps at the HR size
(input and output of ``conv_up2`` and its activation) dwarf the UNet body, which runs at LR size. So the
working memory grows with the padded LR pixel count times ``model_channels * scale**2`` feature values,
counted here in "HR maps" of ``model_channels`` values per HR pixel.

Measured on an NVIDIA H200 (torch 2.11, bf16, released network, ``benchmarks/perf_toggles.py``, 2026-11-29;
working memory = peak allocated minus allocated before the call, weights excluded):

- whole-image head, NCHW (the default layout): 25.80 GiB at LR 1024² = 4.2 HR maps -> ``HEAD_MAPS`` 5 (+19 %);
- head in 128-row slabs + channels_last (``lean``): 11.55 GiB at LR 1024², 2.89 GiB at LR 512² (linear in the
  pixel count) = 1.8 HR maps -> ``LEAN_HEAD_MAPS`` 2 (+10 %).

The default path (slabbed head, NCHW) was not measured on its own; slabs only remove memory, so it is
estimated with ``HEAD_MAPS`` (an upper bound). Earlier CPU measurements (torch 2.13, fp32, peak RSS): 3.1-3.5
maps. E.g. 1024x1024 -> 4096x4096 in bf16: 30.8 GiB (default), 12.8 GiB (lean).
"""

from __future__ import annotations

from .model import GTASRNet
from .tiling import padded_size

__all__ = ["FP32_HR_IMAGES", "HEAD_MAPS", "LEAN_HEAD_MAPS", "upscale_memory"]

HEAD_MAPS = 5  # model_channels-wide HR maps alive at the peak (measured 4.2 on the H200, see module docstring)
LEAN_HEAD_MAPS = 2  # the same with the head in row slabs and channels_last (measured 1.8)
FP32_HR_IMAGES = 4  # x_T, its noise, the output and the tiled blend buffer, float32 RGB at HR size


def upscale_memory(net: GTASRNet, h: int, w: int, lean: bool = False) -> int:
    """Bytes of working memory (beyond the weights) to upscale one h x w LR image in one pass; ``lean``: with
    ``perf.options(gtasr_channels_last=True)`` and the head in row slabs (slower, see srkit/perf.py)."""
    cfg = net.config
    ph, pw = padded_size(h, w, net.lr_multiple)
    value_bytes = next(net.parameters()).element_size()
    maps = LEAN_HEAD_MAPS if lean else HEAD_MAPS
    per_pixel = (maps * cfg.model_channels * value_bytes + FP32_HR_IMAGES * cfg.in_channels * 4) * cfg.scale**2
    return ph * pw * per_pixel
