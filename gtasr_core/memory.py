"""Memory estimate of a patch-free GTASR upscale (pure arithmetic; the node compares it with free memory).

The peak of a GTASR forward is its nearest-upsampling head: ``model_channels``-wide maps at the HR size
(input and output of ``conv_up2`` and its activation) dwarf the UNet body, which runs at LR size. So the
working memory grows with the padded LR pixel count times ``model_channels * scale**2`` feature values.
``HEAD_MAPS`` was measured on CPU (torch 2.13, released network, fp32, peak RSS): 38.3 kB per extra LR
pixel from LR 64 to 128 px and 42.7 kB from 128 to 192 px, i.e. 3.1-3.5 HR maps of 192 channels; 5 leaves
room for GPU convolution workspaces (not measured here). E.g. 1024x1024 -> 4096x4096 in bf16: ~31 GB.
"""

from __future__ import annotations

from ..srkit.sizing import padded_size
from .model import GTASRNet

__all__ = ["FP32_HR_IMAGES", "HEAD_MAPS", "upscale_memory"]

HEAD_MAPS = 5  # model_channels-wide HR maps alive at the peak (measured 3.1-3.5, see module docstring)
FP32_HR_IMAGES = 4  # x_T, its noise, the output and the tiled blend buffer, float32 RGB at HR size


def upscale_memory(net: GTASRNet, h: int, w: int) -> int:
    """Bytes of working memory (beyond the weights) to upscale one h x w LR image in one pass."""
    cfg = net.config
    ph, pw = padded_size(h, w, net.lr_multiple)
    value_bytes = next(net.parameters()).element_size()
    per_pixel = (HEAD_MAPS * cfg.model_channels * value_bytes + FP32_HR_IMAGES * cfg.in_channels * 4) * cfg.scale**2
    return ph * pw * per_pixel
