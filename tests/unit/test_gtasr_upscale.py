"""GTASR inference: released x_T construction, determinism, tiling, seams, OOM fallback, input errors."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from gtasr_support import TINY, border_ratio, deterministic_init_
from memory_budget import memory_budget
from sr4k.gtasr_core import GTASRNet, build, plan_tiles, reflect_pad_to_multiple, upscale
from sr4k.gtasr_core.tiling import TileBlend, TileRect, axis_starts, axis_weight, balanced_axis
from sr4k.gtasr_core.upscale import fallback_tiles
from sr4k.srkit.counter_normal import counter_normal


@pytest.fixture(scope="module")
def net() -> GTASRNet:
    return deterministic_init_(build(TINY))


def _image(h: int, w: int, seed: int = 0, batch: int = 1) -> Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _eps(shape: torch.Size, seed: int, noise: str) -> Tensor:
    """The noise field of each stream, from its definition: the counter stream's function of (seed, index),
    or the CPU generator's randn."""
    if noise == "counter":
        return counter_normal(tuple(shape), seed)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("noise", [None, "counter", "torch"])  # None: the default, counter
def test_patch_free_matches_released_recipe(net: GTASRNet, noise: str | None) -> None:
    """x_T = bicubic_x4(2*lr - 1) + eps, one call at sigma 1, (x0 + 1) / 2 clamped."""
    lr = _image(16, 24)
    out = upscale(net, lr, seed=123, **({} if noise is None else {"noise": noise}))
    lq = lr * 2 - 1
    y = F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)
    eps = _eps(y.shape, 123, noise or "counter")
    with torch.no_grad():
        ref = ((net(y + eps, torch.tensor([1.0]), lq) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_same_seed_same_output_other_seed_differs(net: GTASRNet) -> None:
    lr = _image(16, 16)
    a, b, c = upscale(net, lr, seed=7), upscale(net, lr, seed=7), upscale(net, lr, seed=8)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.02


def test_batch_equals_single_images(net: GTASRNet) -> None:
    lr = _image(16, 16, batch=2)
    both = upscale(net, lr, seed=3)
    assert both.shape == (2, 3, 64, 64)
    torch.testing.assert_close(both[:1], upscale(net, lr[:1], seed=3), rtol=0, atol=1e-6)


def test_odd_size_is_padded_and_cropped(net: GTASRNet) -> None:
    """13 x 21 LR: reflect-padded to 16 x 24 for the network; the output is its top-left 52 x 84."""
    lr = _image(13, 21)
    out = upscale(net, lr, seed=5)
    assert out.shape == (1, 3, 52, 84)
    lq = reflect_pad_to_multiple(lr * 2 - 1, net.lr_multiple)
    assert lq.shape[-2:] == (16, 24)
    assert torch.equal(lq[..., 13:, :21], (lr * 2 - 1)[..., [11, 10, 9], :])  # reflected rows
    y = F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)
    eps = _eps(y.shape, 5, "counter")  # the default stream
    with torch.no_grad():
        ref = ((net(y + eps, 1.0, lq) + 1) / 2).clamp(0, 1)[..., :52, :84]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_tiny_image_pads_by_repeated_reflection(net: GTASRNet) -> None:
    for h, w in ((1, 1), (3, 2), (2, 17)):
        assert upscale(net, _image(h, w), seed=0).shape == (1, 3, 4 * h, 4 * w)
    x = torch.arange(3.0).view(1, 1, 1, 3)  # width reflects repeatedly, the 1-px height replicates
    assert reflect_pad_to_multiple(x, 8).tolist() == [[[[0, 1, 2, 1, 0, 1, 2, 1]] * 8]]


@pytest.mark.parametrize("plan", ["balanced", "released"])
def test_tiled_is_close_to_patch_free(net: GTASRNet, plan: str) -> None:
    """Same noise field everywhere: tiling changes the output far less than changing the seed does."""
    lr = _image(64, 64)
    rects = plan_tiles(64, 64, 48, 32, net.lr_multiple)
    assert len(rects) == 4
    full = upscale(net, lr, seed=1)
    tiled = upscale(net, lr, seed=1, tile=48, overlap=32, tile_plan=plan)
    other_seed = upscale(net, lr, seed=2)
    tiling_error = (tiled - full).abs().mean()
    seed_spread = (other_seed - full).abs().mean()
    assert tiling_error < 0.25 * seed_spread, (tiling_error, seed_spread)  # measured ~0.09x


class _TileSensitiveNet(GTASRNet):
    """Smooth output plus a per-call global offset (like GroupNorm statistics), so each tile is offset
    differently: naive stitching shows the tile borders, blending must hide them."""

    def forward(self, x: Tensor, sigma: float | Tensor, lq: Tensor) -> Tensor:
        up = F.interpolate(lq, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return 0.5 * up + 0.4 * lq.mean()


def _borders(rects: list[TileRect], h: int, w: int, s: int) -> tuple[list[int], list[int]]:
    bx = {r.x * s for r in rects if r.x > 0} | {(r.x + r.w) * s for r in rects if r.x + r.w < w}
    by = {r.y * s for r in rects if r.y > 0} | {(r.y + r.h) * s for r in rects if r.y + r.h < h}
    return sorted(bx), sorted(by)


def test_feathered_tiles_leave_no_seam() -> None:
    net = _TileSensitiveNet(TINY).eval()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 96), indexing="ij")
    lr = torch.stack([xx, yy, (xx * yy) ** 2])[None] * 0.8 + 0.1  # smooth, varying means per tile
    feathered = upscale(net, lr, seed=0, tile=32, overlap=16)
    hard = upscale(net, lr, seed=0, tile=32, overlap=0)
    bx, by = _borders(plan_tiles(64, 96, 32, 16, 8), 64, 96, 4)
    hx, hy = _borders(plan_tiles(64, 96, 32, 0, 8), 64, 96, 4)
    assert border_ratio(hard, hx, hy) > 3.0  # the metric sees a hard seam
    assert border_ratio(feathered, bx, by) < 1.3  # measured ~1.0
    assert border_ratio(feathered, hx, hy) < 1.3


def test_plan_tiles_released_geometry() -> None:
    assert axis_starts(1024, 512, 448) == [0, 448, 512]
    assert axis_starts(512, 512, 448) == [0] and axis_starts(300, 512, 448) == [0]
    assert axis_starts(960, 512, 448) == [0, 448]
    rects = plan_tiles(1024, 640, 512, 64, 64, "released")
    assert [(r.y, r.x) for r in rects] == [(y, x) for y in (0, 448, 512) for x in (0, 128)]
    assert all((r.h, r.w) == (512, 512) for r in rects)
    assert plan_tiles(128, 192, 512, 64, 64, "released") == [TileRect(0, 0, 128, 192)]


def test_plan_tiles_balanced_geometry() -> None:
    """The default plan: as many tiles as the released one, as small as the overlap allows."""
    rects = plan_tiles(1024, 640, 512, 64, 64)
    assert [(r.y, r.x) for r in rects] == [(y, x) for y in (0, 320, 640) for x in (0, 256)]
    assert {(r.h, r.w) for r in rects} == {(384, 384)}  # LR 1024² at 512/64: 9 tiles of 384², not of 512²
    assert sum(r.h * r.w for r in rects) < 0.6 * sum(
        r.h * r.w for r in plan_tiles(1024, 640, 512, 64, 64, "released")
    )
    assert plan_tiles(128, 192, 512, 64, 64) == [TileRect(0, 0, 128, 192)]
    assert balanced_axis(2048, 512, 64, 64) == (512, [0, 384, 768, 1152, 1536])  # no smaller size can do


@pytest.mark.parametrize("multiple", [8, 64])
def test_balanced_axis_covers_with_the_fewest_smallest_tiles(multiple: int) -> None:
    for length in range(multiple, 40 * multiple + 1, multiple):
        for tile in range(multiple, 12 * multiple + 1, multiple):
            for overlap in sorted({0, 1, multiple // 2, tile // 8, tile // 2, tile - 1}):
                size, starts = balanced_axis(length, tile, overlap, multiple)
                released = axis_starts(length, min(tile, length), tile - overlap)
                assert size % multiple == 0 and size <= min(tile, length)
                assert starts[0] == 0 and starts[-1] + size == length and starts == sorted(starts)
                assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False))
                assert len(starts) <= len(released)
                n = len(starts)  # minimal: n - 1 tiles of at most ``tile`` cannot cover with this overlap
                assert n == 1 or (n - 1) * tile - (n - 2) * overlap < length
                # as small as can be: one multiple less would leave a gap or an overlap too small
                assert size == multiple or n * (size - multiple) - (n - 1) * overlap < length


def test_balanced_axis_refuses_what_no_layout_can_do() -> None:
    for args in ((1024, 512, 512, 64), (1024, 512, -1, 64), (1024, 500, 64, 64), (1000, 512, 64, 64)):
        with pytest.raises(ValueError, match=r"need 0 <= overlap < tile and tile, length multiples of 64"):
            balanced_axis(*args)


def test_unknown_tile_plan_is_refused(net: GTASRNet) -> None:
    with pytest.raises(ValueError, match=r"plan='grid'; choose one of balanced, released"):
        plan_tiles(64, 64, 32, 8, 8, "grid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tile_plan='grid'; choose one of balanced, released"):
        upscale(net, _image(16, 16), seed=0, tile_plan="grid")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((128, 128, 100, 8, 64), r"tile=100 must be a positive multiple of 64.*use e.g. 64 or 128"),
        ((128, 128, 64, 64, 64), r"overlap=64 must be in \[0, tile=64\)"),
        ((100, 128, 64, 8, 64), r"image 100x128 is not a positive multiple of 64; pad it first"),
    ],
)
def test_plan_tiles_errors(args: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_tiles(*args)


def _raw_weight(r: TileRect, h: int, w: int, ramp: int, s: int) -> Tensor:
    """The feathered weight of one tile, [h*s, w*s], from its definition (outer product of the axis ramps)."""
    wy = axis_weight(r.y * s, r.h * s, h * s, ramp * s)
    wx = axis_weight(r.x * s, r.w * s, w * s, ramp * s)
    return wy[:, None] * wx[None, :]


def _hr(r: TileRect, s: int) -> tuple[slice, slice]:
    return slice(r.y * s, (r.y + r.h) * s), slice(r.x * s, (r.x + r.w) * s)


def test_tile_weights_partition_of_unity_shape() -> None:
    """Weights are 1 on image borders and interiors, ramp smoothly inside, and never vanish."""
    rects = plan_tiles(64, 64, 32, 16, 8)
    total = torch.zeros(256, 256)
    for r in rects:
        wgt = _raw_weight(r, 64, 64, 16, 4)
        total[_hr(r, 4)] += wgt
        assert wgt.min() > 0 and wgt.max() <= 1
    assert _raw_weight(rects[0], 64, 64, 16, 4)[0, 0] == 1  # image corner: no ramp
    assert total.min() >= 1 - 1e-6


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(64, 64, 32, 16), (64, 96, 32, 8), (40, 72, 24, 16)])
def test_tile_blend_is_the_normalised_feathered_weight(h: int, w: int, tile: int, overlap: int) -> None:
    """Each tile's separable weight = its feathered weight / the sum of all tiles' (on an uneven grid too, where
    the last tile sits flush with the border), they sum to 1 everywhere, and coverage is the running sum."""
    s, rects = 4, plan_tiles(h, w, tile, overlap, 8)
    blend = TileBlend(rects, h, w, overlap, s)
    raw_sum, norm_sum, running = (
        torch.zeros(h * s, w * s),
        torch.zeros(h * s, w * s),
        torch.zeros(h * s, w * s),
    )
    for r in rects:
        raw_sum[_hr(r, s)] += _raw_weight(r, h, w, overlap, s)
    for r in rects:
        wy, wx = blend.weights(r)
        assert wy.shape == (r.h * s, 1) and wx.shape == (1, r.w * s)
        torch.testing.assert_close(
            wy * wx, _raw_weight(r, h, w, overlap, s) / raw_sum[_hr(r, s)], rtol=1e-6, atol=0
        )
        norm_sum[_hr(r, s)] += wy * wx
        running[_hr(r, s)] += wy * wx
        torch.testing.assert_close(blend.coverage(r), running[_hr(r, s)], rtol=0, atol=1e-6)
    torch.testing.assert_close(norm_sum, torch.ones_like(norm_sum), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        blend.coverage(rects[-1]), torch.ones(rects[-1].h * s, rects[-1].w * s), rtol=0, atol=1e-6
    )


def test_tile_blend_needs_a_grid_of_equal_tiles() -> None:
    rects = plan_tiles(64, 64, 32, 16, 8)
    with pytest.raises(ValueError, match="grid of equal tiles"):
        TileBlend(rects[:-1], 64, 64, 16, 4)
    with pytest.raises(ValueError, match="grid of equal tiles"):
        TileBlend([*rects[:-1], rects[-1]._replace(h=16)], 64, 64, 16, 4)


@pytest.mark.parametrize(
    ("plan", "columns"),
    [
        ("released", [0, 16, 32, 48, 56]),
        ("balanced", [0, 14, 28, 42, 56]),
    ],  # uneven last step; starts off the grid
)
def test_tiled_output_is_the_feathered_blend_of_the_tile_calls(
    net: GTASRNet, plan: str, columns: list[int]
) -> None:
    """The tiled path against its definition: sum(w_i * y_i) / sum(w_i) over explicit network calls on the tiles
    of the one x_T, then (x0 + 1) / 2 clamped; and every preview region is the blend of the tiles so far."""
    h, w, tile, overlap, s = 40, 80, 24, 8, net.scale
    lr = _image(h, w, seed=4, batch=2)
    regions: list[tuple[int, tuple[int, int, int, int], Tensor]] = []
    out = upscale(
        net,
        lr,
        seed=9,
        tile=tile,
        overlap=overlap,
        on_tile=lambda i, r, t: regions.append((i, r, t.clone())),
        tile_plan=plan,
    )
    lq = lr * 2 - 1
    x_t = F.interpolate(lq, scale_factor=s, mode="bicubic", align_corners=False) + _eps(
        (2, 3, h * s, w * s), 9, "counter"
    )
    rects = plan_tiles(h, w, tile, overlap, 8, plan)
    assert sorted({r.x for r in rects}) == columns
    k = 0
    for i in range(2):
        acc, wsum = torch.zeros(3, h * s, w * s), torch.zeros(h * s, w * s)
        for r in rects:
            ys, xs = _hr(r, s)
            with torch.no_grad():
                y = net(x_t[i : i + 1, :, ys, xs], 1.0, lq[i : i + 1, :, r.y : r.y + r.h, r.x : r.x + r.w])[0]
            wgt = _raw_weight(r, h, w, overlap, s)
            acc[:, ys, xs] += wgt * y
            wsum[ys, xs] += wgt
            index, rect, region = regions[k]
            assert (index, rect) == (i, (r.y * s, r.x * s, r.h * s, r.w * s))
            expected = ((acc[:, ys, xs] / wsum[ys, xs] + 1) / 2).clamp(0, 1)
            torch.testing.assert_close(region[0], expected, rtol=0, atol=2e-6)
            k += 1
        torch.testing.assert_close(out[i], ((acc / wsum + 1) / 2).clamp(0, 1), rtol=0, atol=2e-6)
    assert k == len(regions) == 2 * len(rects) == 2 * 10


def test_progress_per_image_and_tile_and_cancel(net: GTASRNet) -> None:
    calls: list[tuple[int, int]] = []
    upscale(net, _image(16, 16, batch=2), seed=0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    upscale(net, _image(16, 24), seed=0, tile=8, overlap=0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        upscale(net, _image(16, 16), seed=0, tile=8, overlap=0, progress=cancel)


def test_fallback_tile_sizes() -> None:
    assert fallback_tiles(512, 1024, 64) == [512, 256, 128, 64]
    assert fallback_tiles(512, 192, 64) == [192, 64]
    assert fallback_tiles(500, 4096, 64) == [448, 192, 64]
    assert fallback_tiles(32, 16, 64) == []


def _lr_widths(net: GTASRNet) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """The LR width of every network call, failed ones included (a pre-hook observes; nothing is replaced)."""
    widths: list[int] = []
    handle = net.register_forward_pre_hook(lambda module, args: widths.append(args[2].shape[-1]))
    return widths, handle


# The tiny GTASR's largest activation is its HR head, 2 kiB per LR pixel: an 8 x 32 LR image needs 512 kiB in one
# pass (and as one 32-px tile), 16-px tiles 256 kiB, 8-px tiles 128 kiB.
FITS_16PX_TILES, FITS_NOTHING = 384 << 10, 100 << 10


def test_oom_falls_back_to_tiles(net: GTASRNet, caplog: pytest.LogCaptureFixture) -> None:
    """Out of memory at allocation level (``memory_budget``): patch-free, then the fallback tile, then
    halved tiles until they fit; an error once even the smallest tile does not fit or fallback is off."""
    lr = _image(8, 32)
    widths, handle = _lr_widths(net)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="sr4k.gtasr_core.upscale"),
            memory_budget(FITS_16PX_TILES),
        ):
            out = upscale(net, lr, seed=4, fallback_tile=32)
        assert widths == [32, 32, 16, 16, 16]  # patch-free, one 32-px tile, then three 16-px tiles
        assert "out of memory" in caplog.text and "16 px LR tiles (overlap 2)" in caplog.text
        widths.clear()
        with pytest.raises(torch.OutOfMemoryError), memory_budget(FITS_NOTHING):
            upscale(net, lr, seed=4, fallback_tile=32)
        assert widths == [32, 32, 16, 8]  # each size down to the LR multiple failed on its first tile
        widths.clear()
        with pytest.raises(torch.OutOfMemoryError), memory_budget(FITS_16PX_TILES):
            upscale(net, lr, seed=4, allow_tile_fallback=False)
        assert widths == [32]
    finally:
        handle.remove()
    torch.testing.assert_close(out, upscale(net, lr, seed=4, tile=16, overlap=2), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (torch.rand(1, 1, 8, 8), r"3 channels \(RGB\), got 1.*expand\(-1, 3, -1, -1\)"),
        (torch.rand(1, 4, 8, 8), r"got 4.*x\[:, :3\]"),
        (torch.rand(1, 8, 8, 3), r"got 8.*movedim"),
        (torch.rand(1, 2, 3, 8, 8), r"4-D \[B, 3, H, W\], got shape \(1, 2, 3, 8, 8\).*flatten\(0, 1\)"),
        (torch.rand(3, 8, 8), r"got shape \(3, 8, 8\).*x\[None\]"),
        (torch.rand(0, 3, 8, 8), r"lr is empty"),
        (
            torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8),
            r"float tensor in \[0, 1\], got torch.uint8.*/ 255",
        ),
        (torch.rand(1, 3, 8, 8) * 2 - 1, r"values must lie in \[0, 1\].*\(x \+ 1\) / 2"),
    ],
)
def test_bad_input_errors_name_the_fix(net: GTASRNet, image: Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        upscale(net, image, seed=0)


def test_training_mode_net_is_refused() -> None:
    train_net = build(TINY).train()
    with pytest.raises(ValueError, match=r"training mode.*net\.eval\(\)"):
        upscale(train_net, _image(8, 8), seed=0)


def test_bad_sigma_and_non_tensor(net: GTASRNet) -> None:
    with pytest.raises(ValueError, match=r"sigma=1.5 must be in \(0, 1\]"):
        upscale(net, _image(8, 8), seed=0, sigma=1.5)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        upscale(net, [[0.0]], seed=0)  # type: ignore[arg-type]
