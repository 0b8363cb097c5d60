"""GTASR one-step inference: x_T = bicubic_x4(lr) + sigma * eps, x0 = D(x_T; sigma, lr) (docs/gtasr.md §8).

Conventions: images go in and out as float BCHW in [0, 1]; the network works in [-1, 1]. The noise
eps is drawn once for the whole padded HR image from ``seed`` by a generator whose bits do not depend on the
device (``noise.py``), so neither does the output, and the tiled and patch-free paths see the same noise field.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..srkit import perf
from ..srkit.images import Progress
from ..srkit.images import check_image as _check_image
from ..srkit.layout import layout_of
from ..srkit.oom import is_oom
from ..srkit.transfer import ImageBatch, to_host
from .model import GTASRNet
from .noise import DEFAULT_NOISE, NoiseKind, clear_noise_cache, noise_field, set_layout
from .tiling import (
    DEFAULT_TILE_PLAN,
    TILE_PLANS,
    TileBlend,
    TilePlan,
    TileRect,
    plan_tiles,
    reflect_pad_to_multiple,
)

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "check_image", "fallback_tiles", "upscale"]

log = logging.getLogger(__name__)

DEFAULT_TILE = 512  # released chop_size (LR pixels)
DEFAULT_OVERLAP = 64  # released chop_size - chop_stride (512 - 448)

TileDone = Callable[[int, tuple[int, int, int, int], Tensor], None]
"""``on_tile(image_index, (y, x, h, w) in padded HR px, region [1, 3, h, w] in [0, 1])`` after each tile: the
tile's region as blended from the tiles so far (final where no later tile reaches). On the host, in a buffer that
the next tile reuses: copy it to keep it."""


def check_image(lr: object, channels: int = 3) -> Tensor:
    """Validate an LR batch: float tensor [B, C, H, W], B >= 1, values in [0, 1] (GTASR's contract). Returns it.

    Raises:
        srkit.images.ImageError: (a ValueError and a TypeError) naming the problem and the fix.
    """
    return _check_image(lr, name="lr", channels=channels, check_values=True)


def _noisy_input(
    lq: Tensor,
    sigma: float,
    seed: int,
    scale: int,
    noise: NoiseKind = DEFAULT_NOISE,
    compute: torch.device | None = None,
) -> Tensor:
    """x_T = bicubic_x{scale}(lq) + sigma * eps on lq's device; eps from :func:`noise_field` (float32), the
    counter field computed on ``compute`` (default lq's device)."""
    y = F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False)
    return y + sigma * noise_field(tuple(y.shape), seed, noise, y.device, compute=compute)


def _run(net: GTASRNet, x: Tensor, sigma: float, lq: Tensor, device: torch.device) -> Tensor:
    """x0 mapped to [0, 1] (not clamped), on ``device``."""
    with torch.no_grad():
        return net(x.to(device), sigma, lq.to(device)).add_(1).mul_(0.5)


def _patch_free(
    net: GTASRNet, x_t: Tensor, lq: Tensor, sigma: float, device: torch.device, progress: Progress | None
) -> Tensor:
    outs = ImageBatch(lq.shape[0], x_t.device, pinned=False)
    for i in range(lq.shape[0]):
        outs.add(_run(net, x_t[i : i + 1], sigma, lq[i : i + 1], device))
        if progress is not None:
            progress(i + 1, lq.shape[0])
    return outs.result()


class _HostTiles:
    """Host buffers that every tile of a tiled run reuses. A fresh tile-sized tensor (48 MB for a 2048² HR tile)
    faults in new pages each time: on the CPU that made a division into a new tensor 3.4x slower than into a used
    one (a 2-core EPYC). Between the host and CUDA the buffers are pinned, so the copies also run at full PCIe
    speed, and a strided tile view is gathered into one buffer instead of a new contiguous copy per tile."""

    def __init__(self, host: torch.device, pinned: bool, memory_format: torch.memory_format) -> None:
        self.host, self.pinned, self.memory_format = host, pinned, memory_format
        self._outgoing: Tensor | None = None
        self._incoming: Tensor | None = None
        self._shown: Tensor | None = None
        self._coverage: Tensor | None = None

    def _buffer(self, like: Tensor, other: torch.device, memory_format: torch.memory_format) -> Tensor:
        pin = self.pinned and other.type == "cuda" and self.host.type == "cpu"
        return torch.empty(
            like.shape, dtype=like.dtype, device=self.host, pin_memory=pin, memory_format=memory_format
        )

    def send(self, x: Tensor, device: torch.device) -> Tensor:
        """The host tile ``x`` (a strided view of the whole image) on ``device``, through the outgoing buffer."""
        if x.device == device:
            return x
        if self._outgoing is None:
            self._outgoing = self._buffer(x, device, torch.contiguous_format)
        return self._outgoing.copy_(x).to(device)

    def land(self, y: Tensor) -> Tensor:
        """``y`` on the host: ``y`` itself if it is there, else copied into the incoming buffer (valid until the
        next call), which has the whole image's layout (``y`` is made so on its device, where it is cheap)."""
        if y.device == self.host:
            return y
        if self._incoming is None:
            self._incoming = self._buffer(y, y.device, self.memory_format)
        return self._incoming.copy_(y)

    def shown(self, region: Tensor, blend: TileBlend, r: TileRect) -> Tensor:
        """The region as blended from the tiles so far, clamped to [0, 1] (valid until the next call)."""
        self._coverage = blend.coverage(r, out=self._coverage)
        if self._shown is None:
            self._shown = torch.empty(
                region.shape, dtype=region.dtype, device=region.device, memory_format=self.memory_format
            )
        return torch.div(region, self._coverage, out=self._shown).clamp_(0, 1)


def _tiled(
    net: GTASRNet,
    x_t: Tensor,
    lq: Tensor,
    sigma: float,
    device: torch.device,
    tile: int,
    overlap: int,
    progress: Progress | None,
    on_tile: TileDone | None = None,
    plan: TilePlan = DEFAULT_TILE_PLAN,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tensor:
    """Run LR tiles and blend their HR outputs with feathered weights (sum w*y / sum w), on x_t's device, into
    an image of ``memory_format``.

    Each tile is weighted by its normalised weight (``TileBlend``) on the model's device, so the whole image only
    takes one in-place add per tile: no weight map, no division and no copies of the whole image on the host.
    """
    s, (h, w) = net.scale, lq.shape[-2:]
    rects = plan_tiles(h, w, tile, overlap, net.lr_multiple, plan)
    total, done = lq.shape[0] * len(rects), 0
    out = torch.empty(x_t.shape, dtype=torch.float32, device=x_t.device, memory_format=memory_format).zero_()
    blend = TileBlend(rects, h, w, overlap, s, device=out.device)
    host = _HostTiles(out.device, perf.current().pinned_output, memory_format)
    for i in range(lq.shape[0]):
        for r in rects:
            hr = (slice(None), slice(None), slice(r.y * s, (r.y + r.h) * s), slice(r.x * s, (r.x + r.w) * s))
            x = host.send(x_t[i : i + 1][hr], device)
            y = _run(net, x, sigma, lq[i : i + 1, :, r.y : r.y + r.h, r.x : r.x + r.w], device)
            wy, wx = blend.weights(r)
            region = out[i : i + 1][hr]
            y = y.mul_(wy.to(device)).mul_(wx.to(device))
            if y.device != out.device:  # the copy to the host then lands in the image's layout as one DMA
                y = y.contiguous(memory_format=memory_format)
            region.add_(host.land(y))  # on the host, add_ reads either layout (faster than a copy first)
            del x, y  # the device copies, before the next tile's network call
            done += 1
            if on_tile is not None:  # before progress: a progress report may carry the tile as a preview
                on_tile(i, (r.y * s, r.x * s, r.h * s, r.w * s), host.shown(region, blend, r))
            if progress is not None:
                progress(done, total)
    return out


def fallback_tiles(first: int, longest_side: int, multiple: int) -> list[int]:
    """Tile sizes to try after an OOM: ``first`` (capped at the image), then halved, all multiples of
    ``multiple`` and >= it. E.g. (512, 1024, 64) -> [512, 256, 128, 64]."""
    tiles, t = [], min(first // multiple * multiple, longest_side)
    while t >= multiple:
        tiles.append(t)
        t = t // 2 // multiple * multiple
    return tiles


def _free_memory(device: torch.device) -> None:
    """Release what a failed attempt held on ``device``, and the host's cached ``torch`` noise field (a whole HR
    image, 201 MB at 4096²), which tiles do not use."""
    clear_noise_cache()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def upscale(
    net: GTASRNet,
    lr: Tensor,
    *,
    seed: int,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    sigma: float = 1.0,
    progress: Progress | None = None,
    allow_tile_fallback: bool = True,
    fallback_tile: int = DEFAULT_TILE,
    on_tile: TileDone | None = None,
    noise: NoiseKind = DEFAULT_NOISE,
    tile_plan: TilePlan = DEFAULT_TILE_PLAN,
) -> Tensor:
    """Super-resolve ``lr`` [B, 3, h, w] (float, [0, 1]) to [B, 3, 4h, 4w] (lr's dtype and device, [0, 1]).

    One network call per image (patch-free, ``tile=None``) or per LR tile of at most ``tile`` px with at least
    ``overlap`` px (released: 512 / 64): ``tile_plan`` "balanced" (default) covers the image with the fewest tiles,
    each as small as the overlap allows; "released" with tiles of ``tile`` px at stride ``tile - overlap``, the last
    one flush with the border, as the released code (``tiling.plan_tiles``). Any size works: the LR is reflect-padded to
    ``net.lr_multiple`` and the output cropped. ``seed`` fixes eps (same seed -> same output).
    ``progress(done, total)`` is called after every image or tile; its exceptions propagate (cancel).
    When patch-free runs out of memory (the network, or already the whole image's HR input on the device) and
    ``allow_tile_fallback``, the image is retried in tiles of ``fallback_tile`` (halved on further OOM, down to
    the LR multiple) with a logged warning; when ``tile``
    runs out of memory and ``allow_tile_fallback``, it is halved likewise (overlap capped at tile // 8).
    ``on_tile`` receives each finished tile of a tiled run (e.g. for a progress preview).
    ``noise``: "counter" (default; drawn on the GPU, identical on every device) or "torch" (the CPU
    ``torch.Generator`` stream that was the default before, kept on the device per seed and size; it
    reproduces those images).
    The output keeps ``lr``'s memory layout, as torch ops do: NHWC-strided when ``lr`` is (a ComfyUI ``IMAGE``'s
    ``movedim(-1, 1)`` view), else contiguous. Either way the network runs in its own layout; an NHWC result is
    an ``IMAGE`` as its ``[B, H, W, C]`` view: with the network on a GPU, no pass over the result on the host
    (4096²: 0.084 s less on 2 cores).
    """
    check_image(lr, net.config.in_channels)
    if net.training:
        raise ValueError(
            "net is in training mode (dropout would randomise the output); call net.eval() first"
        )
    if not 0.0 < sigma <= 1.0:
        raise ValueError(f"sigma={sigma} must be in (0, 1]; the released one-step sampler uses 1.0")
    if tile_plan not in TILE_PLANS:
        raise ValueError(f"tile_plan={tile_plan!r}; choose one of {', '.join(TILE_PLANS)}")
    device = next(net.parameters()).device
    h, w = lr.shape[-2:]
    opts = perf.current()
    out_format = layout_of(lr)
    lq = reflect_pad_to_multiple(lr.float() * 2 - 1, net.lr_multiple)
    host = lq.device
    # Patch-free: bicubic x4, noise, clamping then run on the model's device. Tiled: the whole-image buffers (x_T
    # and the blend, 2 HR float32 images: 0.4 GB at 4096², 6.4 GB at 16384²) stay where lr is and only tiles
    # travel, so a tiled run needs one tile's memory on the device, as the callers reserve.
    if opts.gtasr_device_input and tile is None:
        lq = lq.to(device)
    set_layout(net, opts.gtasr_channels_last)
    # The LR in the network's layout before the HR-size noisy input is made from it: an NHWC view (a node's IMAGE)
    # would otherwise make the 4K input and the preconditioning around the network NHWC too (srkit/layout.py).
    lq = lq.contiguous(
        memory_format=torch.channels_last if opts.gtasr_channels_last else torch.contiguous_format
    )
    longest = max(lq.shape[-2:])
    tiles: list[int | None] = [tile]
    if (
        allow_tile_fallback
    ):  # after the whole image, or after the caller's tile size (halved, as tiles only shrink)
        first = fallback_tile if tile is None else min(tile, longest) // 2
        tiles += fallback_tiles(first, longest, net.lr_multiple)
    start = 0  # the first entry of tiles to try
    try:
        x_t = _noisy_input(lq, sigma, seed, net.scale, noise, compute=device)
    except Exception as e:  # the HR input itself (3 HR float32 maps at its peak) did not fit on the device
        if not is_oom(e) or lq.device == host or len(tiles) == 1:
            raise
        start = 1  # the whole image cannot run where its input does not fit
    if start:  # outside the except block, so the failed attempt's tensors are released first
        _free_memory(device)
        log.warning(
            "GTASR: out of memory making the whole-image input on %s; running in %d px LR tiles from the host",
            device,
            tiles[1],
        )
        lq = lq.to(host)
        x_t = _noisy_input(lq, sigma, seed, net.scale, noise, compute=device)
    for i, t in enumerate(tiles[start:], start):
        ov = overlap if i == 0 else min(overlap, (t or 0) // 8)
        if t is not None and x_t.device != host:  # falling back to tiles: the whole image goes to the host
            x_t, lq = x_t.to(host), lq.to(host)
            _free_memory(device)
        try:
            if t is None:
                out = _patch_free(net, x_t, lq, sigma, device, progress)
            else:
                out = _tiled(net, x_t, lq, sigma, device, t, ov, progress, on_tile, tile_plan, out_format)
            break
        except Exception as e:  # torch OOM types, and accelerator errors reporting OOM (srkit.oom)
            if not is_oom(e) or i == len(tiles) - 1:
                raise
        # Outside the except block, so the traceback (and the tensors its frames hold) is released.
        _free_memory(device)
        log.warning(
            "GTASR: out of memory %s; retrying with %d px LR tiles (overlap %d)",
            "patch-free" if t is None else f"with {t} px tiles",
            tiles[i + 1],
            min(overlap, tiles[i + 1] // 8),
        )
    # The passes return x0 in [0, 1] (the blend is linear and its weights sum to 1), clamped once here. A
    # patch-free result takes lr's layout on the model's device, where the transpose is cheap.
    out = out[..., : h * net.scale, : w * net.scale].clamp_(0, 1).to(lr.dtype)
    out = out.contiguous(memory_format=out_format)
    return to_host(out, pinned=opts.pinned_output) if lr.device.type == "cpu" else out.to(lr.device)
