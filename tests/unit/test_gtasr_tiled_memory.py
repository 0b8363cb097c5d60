"""A tiled GTASR run holds one tile on the model's device, never the whole image.

The meta device stands in for the GPU (``PeakTracker`` counts its allocations); results copied back to the host
become zeros on the CPU (``_MetaToHost``), since values do not matter for a memory count. Only the whole-image
buffers (x_T and the blend: two float32 HR images, 6.4 GB at 16384²) could make the device's memory grow with the
image, or a tile's output kept past its blend: each tile must start with the same bytes live on the device,
whatever the image size, whether the caller asked for tiles or the whole image ran out of memory first.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sr4k.gtasr_core import GTASRNet, upscale
from sr4k.gtasr_core.config import TINY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from peak_tracker import PeakTracker  # benchmarks/ is a script folder, not a package

upscale_mod = importlib.import_module("sr4k.gtasr_core.upscale")
TILE, OVERLAP = 32, 8
WIDE = 80  # LR px: stride 24, so 3 x 3 tiles


class _MetaToHost(TorchDispatchMode):
    """Copies from meta to the CPU give zeros of the right shape and dtype, and copies into a CPU tensor from
    meta leave it as it is (meta tensors hold no values)."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        src = args[0] if args else None
        if (
            func is torch.ops.aten.copy_.default
            and args[0].device.type == "cpu"
            and args[1].device.type == "meta"
        ):
            return args[0]
        if (
            func is torch.ops.aten._to_copy.default
            and isinstance(src, torch.Tensor)
            and src.device.type == "meta"
            and torch.device(kwargs.get("device") or "meta").type == "cpu"
        ):
            return torch.zeros(src.shape, dtype=kwargs.get("dtype") or src.dtype)
        return func(*args, **kwargs)


def _live_at_tile_starts(lr_px: int, **kw: Any) -> list[int]:
    """Bytes live on the stand-in device as each network call (one per tile) starts."""
    with torch.device("meta"):
        net = GTASRNet(TINY).eval()
    lr = torch.rand(1, 3, lr_px, lr_px, generator=torch.Generator().manual_seed(0))
    live: list[int] = []
    with _MetaToHost(), PeakTracker("meta") as t, torch.no_grad():
        hook = net.register_forward_pre_hook(lambda *_: live.append(t.live_bytes))
        try:
            upscale(net, lr, seed=0, overlap=OVERLAP, fallback_tile=TILE, **kw)
        finally:
            hook.remove()
    return live


@pytest.mark.parametrize("noise", ["counter", "torch"])
def test_tiles_hold_one_tile_on_the_device(noise: str) -> None:
    one = _live_at_tile_starts(TILE, tile=TILE, noise=noise)
    many = _live_at_tile_starts(WIDE, tile=TILE, noise=noise)
    assert len(one) == 1 and len(many) == 9
    # x_T of the wide image alone (320 px square, RGB float32) would add 1.2 MB
    assert set(many) == set(one), (one, many)


@pytest.mark.parametrize("noise", ["counter", "torch"])
def test_falling_back_to_tiles_moves_the_whole_image_to_the_host(
    monkeypatch: pytest.MonkeyPatch, noise: str
) -> None:
    """The whole image is tried first on the device; when it runs out of memory (the environment here: a card
    too small), x_T goes back to the host before the tiles start, and the device copy of the ``torch`` noise
    field (cached for the next call of that seed and size) is dropped with it."""
    expected = set(_live_at_tile_starts(TILE, tile=TILE, noise=noise))

    def out_of_memory(*_: object) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")

    monkeypatch.setattr(upscale_mod, "_patch_free", out_of_memory)
    live = _live_at_tile_starts(WIDE, noise=noise)
    assert len(live) == 9 and set(live) == expected, (expected, live)


@pytest.mark.parametrize("noise", ["counter", "torch"])
def test_an_input_too_large_for_the_device_runs_in_tiles_from_the_host(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, noise: str
) -> None:
    """Out of memory while making the whole image's input (bicubic x4 + noise) on the device, e.g. the 16384²
    second pass of x16 on a small card: the run goes on in the fallback tiles from the host, as when the network
    runs out of memory; without the fallback the error is raised."""
    expected = set(_live_at_tile_starts(TILE, tile=TILE, noise=noise))
    real = upscale_mod._noisy_input

    def noisy_input(lq: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if lq.device.type == "meta":  # the device attempt
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        return real(lq, *args, **kwargs)

    monkeypatch.setattr(upscale_mod, "_noisy_input", noisy_input)
    with caplog.at_level(logging.WARNING, logger="sr4k.gtasr_core.upscale"):
        live = _live_at_tile_starts(WIDE, noise=noise)
    assert len(live) == 9 and set(live) == expected, (expected, live)
    assert f"making the whole-image input on meta; running in {TILE} px LR tiles from the host" in caplog.text
    with pytest.raises(torch.OutOfMemoryError):
        _live_at_tile_starts(WIDE, noise=noise, allow_tile_fallback=False)
