"""GTASR keeps its memory promises under a real allocation budget (``memory_budget``), not a stubbed core.

- ``tiling=force`` asks ComfyUI for one tile's working memory, not the whole image's.
- ``tiling=auto`` that picks tiles up front halves them on out-of-memory, as the patch-free path does.
- Out of memory with no way left is the node's clear error, raised after the failed step is released.
"""

from __future__ import annotations

import logging

import pytest
import torch

from gtasr_node_fixtures import gtasr_patcher, nodes  # noqa: F401 - the in-process node module fixture
from gtasr_support import TINY, deterministic_init_
from memory_budget import memory_budget
from sr4k.gtasr_core import GTASRNet, build, upscale
from sr4k.gtasr_core.memory import upscale_memory

# The tiny GTASR's largest activation is its HR head: 32 channels x 16 HR pixels per LR pixel, float32, i.e.
# 2 kiB per LR pixel. A 16 x 32 LR image needs 1 MiB in one pass (and as one 32-px tile), 16-px tiles 512 kiB.
BUDGET = 600 << 10
H, W = 16, 32


@pytest.fixture(scope="module")
def net() -> GTASRNet:
    return deterministic_init_(build(TINY)).eval()


def _image() -> torch.Tensor:
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))


def test_budget_refuses_the_whole_image_and_passes_small_tiles(net: GTASRNet) -> None:
    """The premise of the tests below, measured: one pass exceeds BUDGET, 16-px tiles stay under it."""
    with pytest.raises(torch.OutOfMemoryError), memory_budget(BUDGET) as log:
        upscale(net, _image(), seed=0, allow_tile_fallback=False)
    assert log.refused and min(log.refused) > BUDGET
    with memory_budget(BUDGET) as log:
        upscale(net, _image(), seed=0, tile=16, overlap=2)
    assert 0 < log.largest <= BUDGET


def test_given_tiles_halve_on_out_of_memory(net: GTASRNet, caplog: pytest.LogCaptureFixture) -> None:
    lr = _image()
    with caplog.at_level(logging.WARNING, logger="sr4k.gtasr_core.upscale"), memory_budget(BUDGET):
        out = upscale(net, lr, seed=4, tile=32, overlap=8, allow_tile_fallback=True)
    assert "out of memory with 32 px tiles; retrying with 16 px LR tiles (overlap 2)" in caplog.text
    torch.testing.assert_close(out, upscale(net, lr, seed=4, tile=16, overlap=2), rtol=0, atol=1e-6)
    with pytest.raises(torch.OutOfMemoryError), memory_budget(BUDGET):
        upscale(net, lr, seed=4, tile=32, overlap=8, allow_tile_fallback=False)  # force keeps its tile


def _hwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def test_auto_up_front_tiles_halve_on_out_of_memory(
    nodes,
    monkeypatch: pytest.MonkeyPatch,
    net: GTASRNet,
) -> None:
    import comfy.model_management as mm

    patcher = gtasr_patcher(nodes)
    lr = _image()
    need = upscale_memory(patcher.model, H, W)
    # ComfyUI reports less free memory than the one-pass estimate, so auto picks 32-px tiles up front.
    monkeypatch.setattr(mm, "get_free_memory", lambda *a, **k: need // 2)
    with memory_budget(BUDGET):
        out = nodes.Upscale.execute(patcher, _hwc(lr), 4, "auto", 32, 8).result[0]
    ref = upscale(patcher.model, lr, seed=4, tile=16, overlap=2)
    torch.testing.assert_close(out, _hwc(ref), rtol=0, atol=1e-5)


def test_force_reserves_one_tile_not_the_whole_image(nodes, monkeypatch: pytest.MonkeyPatch) -> None:
    import comfy.model_management as mm

    asked: list[int] = []
    real = mm.load_models_gpu

    def spy(models: list, memory_required: int = 0, **kw: object) -> object:
        asked.append(memory_required)
        return real(models, memory_required=memory_required, **kw)

    monkeypatch.setattr(mm, "load_models_gpu", spy)
    patcher = gtasr_patcher(nodes)
    image = _hwc(torch.rand(1, 3, 32, 48))
    nodes.Upscale.execute(patcher, image, 0, "force", 16, 2)
    nodes.Upscale.execute(patcher, image, 0, "off", 16, 2)
    # 40 px in tiles of at most 32 with an overlap of 8: two tiles of 24 per side, so 24-px tiles are reserved.
    nodes.Upscale.execute(patcher, _hwc(torch.rand(1, 3, 40, 40)), 0, "force", 32, 8)
    tile, whole = upscale_memory(patcher.model, 16, 16), upscale_memory(patcher.model, 32, 48)
    assert asked == [tile, whole, upscale_memory(patcher.model, 24, 24)] and whole == 6 * tile


def test_out_of_memory_is_raised_outside_the_except_block(nodes, monkeypatch: pytest.MonkeyPatch) -> None:
    import comfy.model_management as mm

    emptied: list[int] = []
    real = mm.soft_empty_cache
    monkeypatch.setattr(mm, "soft_empty_cache", lambda *a, **k: (emptied.append(1), real(*a, **k)))
    patcher = gtasr_patcher(nodes)
    small = 400_000  # the fp32 HR buffers (98 kB) fit, a 16-px tile's head (512 kiB) does not
    with memory_budget(small), pytest.raises(RuntimeError) as err:
        nodes.Upscale.execute(patcher, _hwc(_image()), 0, "off", 32, 8)
    assert "in one pass (tiling=off)" in str(err.value) and "Set tiling to auto" in str(err.value)
    assert err.value.__context__ is None  # no OutOfMemoryError (and its frames' tensors) chained to it
    assert emptied  # the cache is emptied after the failed step
    with (
        memory_budget(small),
        pytest.raises(
            RuntimeError,
            match=r"in 16 px tiles \(tiling=force\). "
            r"Lower tile_size \(now 16; try 8\)",
        ),
    ):
        nodes.Upscale.execute(patcher, _hwc(_image()), 0, "force", 16, 2)
