"""Stage I starts from the reference's EDM initialisation (docs/gtasr.md §2.2), not from gtasr_core's full-scale one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sr4k.gtasr_core import build
from sr4k.gtasr_core.unet import SongUNet, UNetBlock
from sr4k.training.gtasr.config import resolve_config
from sr4k.training.gtasr.init import INIT_ZERO_WEIGHT, edm_init_


def _bound(w: torch.Tensor) -> float:
    """xavier_uniform's limit for this weight's fans."""
    receptive = w[0, 0].numel() if w.ndim > 2 else 1
    return math.sqrt(6 / ((w.shape[0] + w.shape[1]) * receptive))


@pytest.fixture(scope="module")
def unet() -> SongUNet:
    torch.manual_seed(0)
    net = edm_init_(build(resolve_config(1, "tiny").network_config))
    return net.model


def test_layers_get_the_reference_scales_and_zero_biases(unet: SongUNet) -> None:
    blocks = [m for m in unet.modules() if isinstance(m, UNetBlock)]
    aux = unet.dec[next(k for k in unet.dec if k.endswith("_aux_conv"))]
    tiny = [b.conv1 for b in blocks] + [aux]
    for conv in tiny:
        assert 0 < conv.weight.abs().max() <= INIT_ZERO_WEIGHT * _bound(conv.weight)
    full = [b.conv0 for b in blocks] + [unet.map_layer0, unet.map_layer1] + [b.affine for b in blocks]
    for layer in full:
        assert 0.9 * _bound(layer.weight) < layer.weight.abs().max() <= _bound(layer.weight)
    for layer in [*tiny, *full]:
        assert not layer.bias.any()


def test_every_residual_block_starts_as_its_skip_path(unet: SongUNet) -> None:
    """conv1 at 1e-5 makes h negligible: block(x) = skip(x)·sqrt(1/2) (+ Swin) to ~1e-5 relative."""
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(1, unet.config.emb_channels, generator=gen)
    checked = 0
    for block in (m for m in unet.modules() if isinstance(m, UNetBlock)):
        if block.swin_layer is not None or block.conv0.up or block.conv0.down:
            continue
        x = torch.randn(1, block.in_channels, 16, 16, generator=gen)
        with torch.no_grad():
            out = block.eval()(x, emb)
            skip = (block.skip(x) if block.skip is not None else x) * math.sqrt(0.5)
        assert (out - skip).norm() < 1e-3 * skip.norm()
        checked += 1
    assert checked >= 3  # the tiny preset's blocks without Swin or resampling
    # gtasr_core's own init (random-weight tests and benchmarks) keeps every block active
    torch.manual_seed(0)
    plain = build(resolve_config(1, "tiny").network_config).model
    block = next(
        m for m in plain.modules() if isinstance(m, UNetBlock) and m.skip is None and m.swin_layer is None
    )
    x = torch.randn(1, block.in_channels, 16, 16, generator=gen)
    with torch.no_grad():
        assert (block.eval()(x, emb) - x * math.sqrt(0.5)).norm() > 0.1 * x.norm()


def test_only_a_gtasr_network_is_accepted() -> None:
    with pytest.raises(TypeError, match="GTASR network"):
        edm_init_(nn.Linear(2, 2))
