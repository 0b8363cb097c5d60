"""Memory estimate of a patch-free GTASR upscale (pure arithmetic; the node compares it with free memory).

Both places where a GTASR forward can peak grow with the padded LR pixel count: the nearest-upsampling head
(``model_channels``-wide maps at the HR size) and, with the head in row slabs, the level-0 Swin window
attention (SDPA's math fallback: q, k, v and the scores upcast to fp32, ``benchmarks/peak_memory.py``). So the
working memory is counted in "HR maps" of ``model_channels`` values per HR pixel.

Measured on an NVIDIA H200 (torch 2.11, bf16, released network, ``benchmarks/perf_toggles.py``, 2026-11-29
and -30; working memory = peak allocated minus allocated before the call, weights excluded):

- whole-image head (``perf`` option ``gtasr_head_rows`` = 0): 25.80 GiB at LR 1024² = 4.2 HR maps ->
  ``HEAD_MAPS`` 5 (+19 %);
- head in 128-row slabs (the default): 11.55 GiB at LR 1024², 2.89 GiB at LR 512² (linear in the pixel
  count; the same in NCHW and channels_last) = 1.8 HR maps -> ``SLAB_HEAD_MAPS`` 2 (+10 %). The meta-device
  count reproduces 11.55, 2.89 and the whole head's 25.80 and puts the slab peak in the level-0 Swin attention;
  freeing conv1's and norm1's outputs before it and attending 2048 windows at a time (``perf`` option
  ``gtasr_attn_windows``) bring it to 7.42 GiB at LR 1024² (1.2 maps; count, not yet measured on a GPU), so the
  constant errs on the safe side until a GPU run confirms the count.

Earlier CPU measurements (torch 2.13, fp32, peak RSS, whole head): 3.1-3.5 maps. E.g. 1024x1024 -> 4096x4096
in bf16: 12.8 GiB with the default slabs (30.8 GiB with the whole head).
"""

from __future__ import annotations

from ..srkit import perf
from ..srkit.sizing import padded_size
from .model import GTASRNet

__all__ = ["FP32_HR_IMAGES", "HEAD_MAPS", "SLAB_HEAD_MAPS", "upscale_memory"]

HEAD_MAPS = (
    5  # model_channels-wide HR maps alive at the peak, whole head (measured 4.2, see module docstring)
)
SLAB_HEAD_MAPS = 2  # the same with the head in row slabs (measured 1.8)
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
    return ph * pw * per_pixel
