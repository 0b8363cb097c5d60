"""The released network's initialisation for training from scratch (EDM's SongUNet conventions).

docs/gtasr.md §2.2 (the released config: "init xavier_uniform"; the second 3×3 conv of each ``UNetBlock`` at
``init_weight 1e-5``). The reference network builds its EDM layers with ``init = xavier_uniform`` (weights) and
zero biases, and ``init_zero = xavier_uniform × 1e-5`` for each block's ``conv1`` and the decoder's ``aux_conv``,
so every residual block starts close to its skip path and the trunk's output starts close to zero. The
upsampler head (``conv_up1``, ``conv_up2``, ``conv_last``) is plain ``nn.Conv2d`` there, and the Swin layers keep
their own initialisation: both keep torch's defaults, as ``gtasr_core`` builds them.

``gtasr_core`` itself builds xavier convolutions with full scale everywhere (random-weight tests and benchmarks
need a network whose every block does something); stage I calls :func:`edm_init_` on a fresh network.
"""

from __future__ import annotations

import torch
from torch import nn

from ...gtasr_core.layers import ResampleConv2d
from ...gtasr_core.unet import SongUNet, UNetBlock

__all__ = ["INIT_ZERO_WEIGHT", "edm_init_"]

INIT_ZERO_WEIGHT = 1e-5
"""EDM's ``init_zero``: xavier_uniform scaled by this (block ``conv1`` and the decoder's ``aux_conv``)."""


@torch.no_grad()
def _xavier_(layer: nn.Linear | ResampleConv2d, gain: float = 1.0) -> None:
    nn.init.xavier_uniform_(layer.weight)
    layer.weight.mul_(gain)
    nn.init.zeros_(layer.bias)


@torch.no_grad()
def edm_init_(net: nn.Module) -> nn.Module:
    """Re-initialise a GTASR network (``EDMUNet`` or its ``SongUNet``) in place as the reference builds it; returns it.

    Linear layers (time-embedding MLP, each block's ``affine``) and EDM convolutions: xavier_uniform, zero bias;
    ``conv1`` of every block and the decoder's ``aux_conv``: xavier_uniform × 1e-5, zero bias.
    """
    unet = next((m for m in net.modules() if isinstance(m, SongUNet)), None)
    if unet is None:
        raise TypeError(f"edm_init_ needs a GTASR network (SongUNet inside), got {type(net).__name__}")
    _xavier_(unet.map_layer0)
    _xavier_(unet.map_layer1)
    for name, module in [*unet.enc.items(), *unet.dec.items()]:
        if isinstance(module, UNetBlock):
            for conv in (module.conv0, module.skip):
                if conv is not None:
                    _xavier_(conv)
            _xavier_(module.affine)
            _xavier_(module.conv1, INIT_ZERO_WEIGHT)
        elif isinstance(module, ResampleConv2d):
            _xavier_(module, INIT_ZERO_WEIGHT if name.endswith("_aux_conv") else 1.0)
    return net
