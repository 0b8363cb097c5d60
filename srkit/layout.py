"""A network's input in the network's own memory layout.

Why: a convolution's output takes the channels_last layout when its input *or* its weight is channels_last. Images
often arrive as channels_last views without anyone asking: ComfyUI's ``IMAGE`` is ``[B, H, W, C]``, so
``image.movedim(-1, 1)`` is an NHWC-strided ``[B, C, H, W]`` (``srkit.image_io.read_image`` returned the same
until it was made to copy into NCHW). Fed as they are, such inputs put every convolution of an NCHW network
(``perf.gtasr_channels_last`` / ``perf.vae_channels_last`` off, as under ``perf.COMPILED``) in channels_last, which
made the ComfyUI nodes and the CLI run another layout than the benchmarks (and, before the layout-keeping GroupNorm,
a slower one: GTASR 0.82 -> 1.16 s on an H200). :func:`in_layout_of` gives the input the layout of the network's
weights instead: a no-op when it has it, one copy of the input (not of any activation) otherwise. The weights'
layout is the option's (:func:`relayout_` changes it in place).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .group_norm import is_channels_last

__all__ = ["in_layout_of", "layout_of", "relayout_"]


def layout_of(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D tensor (a weight, a map, an image) stored NHWC, else
    ``torch.contiguous_format``: the format that keeps ``x``'s layout in ``contiguous`` / ``empty``."""
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def in_layout_of(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` (4-D) in the memory layout of ``weight`` (a 4-D convolution weight with more than one input channel
    or a kernel larger than 1x1, so that its layout is not ambiguous); same values."""
    return x.contiguous(memory_format=layout_of(weight))


def relayout_(param: Tensor, memory_format: torch.memory_format) -> None:
    """Store ``param`` (a weight) in ``memory_format`` in place (same values, same Parameter object); no-op if it is.

    The copy is made in the weight's own kind of tensor: an inference tensor (a model loaded inside
    ``torch.inference_mode``, as ComfyUI runs its loader nodes) stays one, a normal weight stays normal even when this
    runs inside inference mode (a node), so autograd can still use it afterwards (training the same model).
    """
    if param.is_contiguous(memory_format=memory_format):
        return
    with torch.inference_mode(param.is_inference()), torch.no_grad():
        param.data = param.data.contiguous(memory_format=memory_format)
