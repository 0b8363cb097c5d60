"""GTASR network: exact reference state dict, golden outputs, preconditioning maths, Swin geometry."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gtasr_support import TINY, deterministic_init_
from sr4k.gtasr_core import RELEASED, GTASRConfig, build, build_released, c_noise, c_out, c_skip
from sr4k.gtasr_core.swin import (
    SwinBlock,
    relative_position_index,
    roll_hw,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from sr4k.gtasr_core.unet import positional_embedding


@pytest.fixture(scope="module")
def manifest(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "gtasr" / "state_dict_manifest.json").read_text())


@pytest.fixture(scope="module")
def released_meta() -> torch.nn.Module:
    with torch.device("meta"):
        return build_released()


def test_released_state_dict_matches_manifest(manifest: dict, released_meta: torch.nn.Module) -> None:
    sd = released_meta.state_dict()
    entries = {e["key"]: e for e in manifest["entries"]}
    assert set(sd) == set(entries)
    assert {k: list(v.shape) for k, v in sd.items()} == {k: e["shape"] for k, e in entries.items()}
    params = {k for k, _ in released_meta.named_parameters()}
    assert params == {k for k, e in entries.items() if e["parameter"]}
    assert {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()} == {
        k: e["dtype"] for k, e in entries.items()
    }
    assert sum(p.numel() for p in released_meta.parameters()) == manifest["num_parameters"] == 171_518_529


def test_released_appendix_b_counts(released_meta: torch.nn.Module) -> None:
    sd = released_meta.state_dict()
    buffers = dict(released_meta.named_buffers())
    assert len(sd) == 942 and len(buffers) == 33
    assert sum(b.numel() for b in buffers.values()) == 86_064
    assert sum(1 for k in sd if k.endswith("swin_layer.patch_embed.proj.weight")) == 21
    assert tuple(sd["model.enc.64x64_conv.weight"].shape) == (192, 51, 3, 3)
    assert RELEASED.lr_multiple == 64 and RELEASED.hr_multiple == 256


@pytest.mark.slow
def test_released_reproduces_golden_outputs(fixtures_dir: Path) -> None:
    """Both sq64 golden calls of the reference EDMUNet, batched with a per-sample sigma."""
    golden = load_file(str(fixtures_dir / "gtasr" / "golden_io.safetensors"))
    net = deterministic_init_(build_released())
    x = torch.cat([golden["sq64_sigma1.0_x"], golden["sq64_sigma0.3333_x"]])
    lq = golden["sq64_lq"].expand(2, -1, -1, -1)
    with torch.no_grad():
        out = net(x, torch.tensor([1.0, 1.0 / 3.0]), lq)
    assert out.shape == (2, 3, 256, 256)
    torch.testing.assert_close(out[:1], golden["sq64_sigma1.0_out"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[1:], golden["sq64_sigma0.3333_out"], rtol=1e-4, atol=1e-4)


def test_preconditioning_closed_form_values() -> None:
    """docs/gtasr.md §2.1 measured values, and the sigma = 0 boundary coefficients."""
    s = torch.tensor([1 / 3, 2 / 3, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        c_skip(s), torch.tensor([0.02200, 0.00559, 0.002494], dtype=torch.float64), rtol=2e-3, atol=0
    )
    torch.testing.assert_close(
        c_out(s), torch.tensor([0.98894, 0.99720, 0.998752], dtype=torch.float64), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(c_noise(torch.tensor(1.0)), torch.tensor(math.log(1.002) / 4))
    zero = torch.tensor(0.0)
    assert c_skip(zero).item() == 1.0 and c_out(zero).item() == 0.0


def test_denoiser_is_identity_at_sigma_zero() -> None:
    net = deterministic_init_(build(TINY))
    x, lq = torch.randn(2, 3, 32, 64), torch.rand(2, 3, 8, 16) * 2 - 1
    with torch.no_grad():
        out = net(x, 0.0, lq)
        out_noisy = net(x, 1.0, lq)
    assert torch.equal(out, x)
    assert (out_noisy - x).abs().mean() > 0.1  # and not the identity elsewhere


def test_positional_embedding_closed_form() -> None:
    c = torch.tensor([0.3, -1.2])
    emb = positional_embedding(c, 8)
    freqs = torch.tensor([1e-4 ** (i / 3) for i in range(4)])
    expected = torch.cat([torch.sin(c[:, None] * freqs), torch.cos(c[:, None] * freqs)], dim=1)
    torch.testing.assert_close(emb, expected)


def test_relative_position_index_brute_force() -> None:
    w = 3
    idx = relative_position_index(w)
    coords = [(y, x) for y in range(w) for x in range(w)]
    for i, (y1, x1) in enumerate(coords):
        for j, (y2, x2) in enumerate(coords):
            assert idx[i, j] == (y1 - y2 + w - 1) * (2 * w - 1) + (x1 - x2 + w - 1)
    assert idx.max() == (2 * w - 1) ** 2 - 1


def test_window_partition_round_trip_and_order() -> None:
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).view(2, 3, 8, 12)
    win = window_partition(x, 4)
    assert win.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(win[1, :, 0], x[0, 0, 0:4, 4:8].flatten())  # second window of row 0
    assert torch.equal(window_reverse(win, 4, 8, 12), x)
    nhwc = window_reverse(win, 4, 8, 12, channels_last=True)  # same values, stored NHWC (no copy back)
    assert torch.equal(nhwc, x) and nhwc.is_contiguous(memory_format=torch.channels_last)


def test_roll_hw_keeps_the_layout() -> None:
    x = torch.arange(2 * 5 * 8 * 12, dtype=torch.float32).view(2, 5, 8, 12)
    for shift in (-2, 3):
        ref = torch.roll(x, shifts=(shift, shift), dims=(2, 3))
        assert torch.equal(roll_hw(x, shift), ref)
        out = roll_hw(x.contiguous(memory_format=torch.channels_last), shift)
        assert (
            torch.equal(out, ref)
            and out.is_contiguous(memory_format=torch.channels_last)
            and not out.is_contiguous()
        )


@pytest.mark.parametrize(("h", "w"), [(8, 8), (8, 12), (16, 8)])
def test_shifted_window_mask_blocks_exactly_the_wrapped_pairs(h: int, w: int) -> None:
    """Independent rule: after the cyclic shift, two tokens of a window may attend to each other iff
    their original (unrolled) positions are closer than one window on both axes (no wrap-around)."""
    window, shift = 4, 2
    mask = shifted_window_mask(h, w, window, shift)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    orig = torch.stack([(ys + shift) % h, (xs + shift) % w]).float()[None]  # rolled pixel -> source pixel
    pos = window_partition(orig, window)  # [nW, N, 2]
    far = ((pos[:, :, None, :] - pos[:, None, :, :]).abs() >= window).any(-1)
    assert torch.equal(mask != 0, far)
    assert set(mask.unique().tolist()) <= {0.0, -100.0}


def test_any_multiple_size_and_shifted_swin_run() -> None:
    """Non-square LR sizes that are multiples of lr_multiple, on a depth-2 (shifted) Swin variant."""
    cfg = replace(TINY, swin_depth=2)
    net = deterministic_init_(build(cfg))
    m = cfg.lr_multiple
    assert m == 8
    lq = torch.rand(1, 3, 2 * m, 3 * m) * 2 - 1
    x = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bicubic") + torch.randn(1, 3, 8 * m, 12 * m)
    with torch.no_grad():
        out = net(x, 1.0, lq)
    assert out.shape == (1, 3, 8 * m, 12 * m) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of 8"):
        net(x[..., :-16], 1.0, lq[..., :-4])


def _brute_force_swin_block(block: SwinBlock, y: torch.Tensor) -> torch.Tensor:
    """Swin block written token by token: explicit relative offsets and wrap-around test per pair."""
    _, c, h, w = y.shape
    win, shift, heads = block.window, block.shift, block.attn.num_heads
    hn = torch.roll(block.norm1(y), (-shift, -shift), dims=(2, 3))
    out = torch.zeros_like(hn)
    table = block.attn.relative_position_bias_table
    for wy in range(0, h, win):
        for wx in range(0, w, win):
            cells = [(wy + i, wx + j) for i in range(win) for j in range(win)]
            tokens = torch.stack([hn[0, :, p, q] for p, q in cells])  # [N, C]
            q, k, v = block.attn.qkv(tokens).view(len(cells), 3, heads, c // heads).unbind(1)
            logits = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(c // heads)
            for a, (p1, q1) in enumerate(cells):
                for b, (p2, q2) in enumerate(cells):
                    logits[:, a, b] += table[(p1 - p2 + win - 1) * (2 * win - 1) + (q1 - q2 + win - 1)]
                    src = [((p1 + shift) % h, (q1 + shift) % w), ((p2 + shift) % h, (q2 + shift) % w)]
                    if abs(src[0][0] - src[1][0]) >= win or abs(src[0][1] - src[1][1]) >= win:
                        logits[:, a, b] -= 100.0
            attn = torch.einsum("hij,jhd->ihd", logits.softmax(-1), v).reshape(len(cells), c)
            for (p, q), value in zip(cells, block.attn.proj(attn), strict=True):
                out[0, :, p, q] = value
    x = y + torch.roll(out, (shift, shift), dims=(2, 3))
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 2])
def test_swin_block_matches_token_by_token_reference(shift: int) -> None:
    torch.manual_seed(0)
    block = deterministic_init_(SwinBlock(32, num_heads=2, window=4, shift=shift, mlp_ratio=2.0))
    y = torch.randn(1, 32, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(block(y), _brute_force_swin_block(block, y), rtol=1e-4, atol=1e-4)


def test_lr_multiple_derived_from_config() -> None:
    assert GTASRConfig(channel_mult=(1, 2), train_resolution=64, attn_resolutions=(64, 32)).lr_multiple == 16
    # a window clamped by a small training size shrinks the multiple with it
    small = GTASRConfig(
        model_channels=32,
        channel_mult=(1, 2, 2),
        train_resolution=16,
        attn_resolutions=(16,),
        swin_embed_dim=32,
        swin_num_heads=2,
        swin_window=8,
    )
    assert small.lr_multiple == 16  # level 2 Swin (decoder in0) clamps to a 4 px window: 4 * 4


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("scale", 2, "scale=2"),
        ("swin_num_heads", 5, "divisible by swin_num_heads"),
        ("model_channels", 0, "model_channels=0"),
        ("train_resolution", 12, "train_resolution=12"),
        ("dropout", 1.5, "dropout"),
        ("model_channels", 200, "GroupNorm"),
    ],
)
def test_config_validation_names_value_and_fix(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GTASRConfig(**{field: value})


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RELEASED.model_channels = 64  # type: ignore[misc]
