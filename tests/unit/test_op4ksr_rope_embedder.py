"""RFR embedders against the hosts' own stock embedders (ComfyUI EmbedND, diffusers FluxPosEmbed).

With theta' = theta the outputs must be bitwise equal (torch.equal) to the stock embedders; any
other theta' may change only the spatial-axis bands, exactly as the closed form says.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_flux import FluxPosEmbed

from comfy_tree import comfy_flux, import_comfy
from sr4k.op4ksr_core.embedder import RFREmbedder, RFRPosEmbed, embed_nd, grid_from_ids, pos_embed_cos_sin
from sr4k.op4ksr_core.rfr import RFRConfig, ntk_theta
from sr4k.op4ksr_core.rope import flux_ids, rope_matrices

THETA, AXES, DIM = 10_000, [16, 56, 56], 128
GRIDS = [(32, 32), (16, 48), (24, 42)]
IDENTITY = [RFRConfig(mode="none"), RFRConfig(mode="scale", alpha=1.0), RFRConfig(mode="ntk")]


@pytest.mark.comfy
@pytest.mark.parametrize("grid", GRIDS + [(1, 1)])
@pytest.mark.parametrize("config", IDENTITY, ids=["none", "scale1", "ntk_below_ref"])
def test_equals_comfy_embednd_exactly(grid: tuple[int, int], config: RFRConfig) -> None:
    import_comfy()
    from comfy.ldm.flux.layers import EmbedND

    ids = flux_ids(7, *grid, batch=2)
    stock = EmbedND(dim=DIM, theta=THETA, axes_dim=AXES)
    ours = RFREmbedder.from_module(stock, config)
    expected = stock(ids)
    assert expected.shape == (2, 1, 7 + grid[0] * grid[1], DIM // 2, 2, 2)
    assert torch.equal(ours(ids), expected)
    assert (ours.dim, ours.theta, ours.axes_dim) == (stock.dim, stock.theta, stock.axes_dim)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("config", IDENTITY, ids=["none", "scale1", "ntk_below_ref"])
def test_equals_diffusers_flux_pos_embed_exactly(grid: tuple[int, int], config: RFRConfig) -> None:
    ids = flux_ids(7, *grid)[0]
    stock = FluxPosEmbed(theta=THETA, axes_dim=AXES)
    cos, sin = RFRPosEmbed.from_module(stock, config)(ids)
    ref_cos, ref_sin = stock(ids)
    assert cos.dtype == torch.float32 and cos.shape == (ids.shape[0], DIM)
    assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)


def test_matrices_and_cos_sin_are_the_same_rotation() -> None:
    ids = flux_ids(3, 5, 9)
    thetas = (THETA, 17_000.0, 23_000.0)
    mats = embed_nd(ids, AXES, thetas)[0, 0]
    cos, sin = pos_embed_cos_sin(ids[0], AXES, thetas, exponent_grid="linspace")
    assert torch.equal(mats[..., 0, 0], cos[:, 0::2]) and torch.equal(mats[..., 1, 0], sin[:, 0::2])
    assert torch.equal(mats[..., 0, 1], -sin[:, 1::2])


@pytest.mark.parametrize(
    "config", [RFRConfig(mode="scale", alpha=3.0), RFRConfig(mode="ntk")], ids=["scale3", "ntk"]
)
def test_rescaling_changes_only_spatial_bands_as_the_formula_says(config: RFRConfig) -> None:
    grid = (96, 160)  # above the 64 x 64 reference on both axes, and non-square
    ids = flux_ids(5, *grid)
    out = RFREmbedder(DIM, THETA, AXES, config)(ids)
    stock = RFREmbedder(DIM, THETA, AXES, RFRConfig(mode="none"))(ids)
    if config.mode == "scale":
        thetas = (THETA, 3.0 * THETA, 3.0 * THETA)
    else:
        thetas = (THETA, ntk_theta(THETA, 56, 96 / 64), ntk_theta(THETA, 56, 160 / 64))
    assert thetas[1] != THETA and thetas[2] != THETA
    # Axis-0 (image index) bands untouched, bit for bit.
    assert torch.equal(out[..., :8, :, :], stock[..., :8, :, :])
    # Spatial bands are the closed-form rotations with the new per-axis bases.
    for axis, (lo, hi) in ((1, (8, 36)), (2, (36, 64))):
        expected = rope_matrices(ids[..., axis], AXES[axis], thetas[axis]).to(torch.float32).unsqueeze(1)
        assert torch.equal(out[..., lo:hi, :, :], expected)
        # k = 0 has omega = 1 for every base: identical; every other band changed somewhere.
        assert torch.equal(out[..., lo, :, :], stock[..., lo, :, :])
        assert not torch.equal(out[..., lo + 1 : hi, :, :], stock[..., lo + 1 : hi, :, :])


def test_ntk_embedder_reads_the_grid_from_ids() -> None:
    emb = RFREmbedder(DIM, THETA, AXES)
    ids = flux_ids(4, 96, 160)
    assert grid_from_ids(ids) == (96.0, 160.0)
    rows_t, cols_t = emb.thetas_for(grid_from_ids(ids))[1:]
    assert rows_t == ntk_theta(THETA, 56, 1.5) and cols_t == ntk_theta(THETA, 56, 2.5) and rows_t != cols_t
    # Same module, another resolution: adapts at run time.
    assert emb.thetas_for(grid_from_ids(flux_ids(4, 128, 128)))[1:] == (ntk_theta(THETA, 56, 2.0),) * 2


def test_embedders_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="sum\\(axes_dim\\)"):
        RFREmbedder(96, THETA, AXES)
    with pytest.raises(ValueError, match="axes_dim"):
        RFRPosEmbed(THETA, [16, 55, 57])
    with pytest.raises(ValueError, match="out of range"):
        RFREmbedder(32, THETA, [16, 16], RFRConfig(mode="scale", alpha=2.0, axes=(2,)))
    with pytest.raises(ValueError, match=r"\[B, L, n_axes\]"):
        RFREmbedder(DIM, THETA, AXES)(flux_ids(2, 4, 4)[0])
    with pytest.raises(ValueError, match=r"\[L, n_axes\]"):
        RFRPosEmbed(THETA, AXES)(flux_ids(2, 4, 4))
    with pytest.raises(TypeError, match="EmbedND"):
        RFREmbedder.from_module(torch.nn.Identity())


@pytest.mark.comfy
def test_object_patch_into_comfy_flux() -> None:
    """The swap the OP4KSR_ApplyRFR node makes: identity at mode 'none', a real change with NTK."""
    torch.manual_seed(0)
    model = comfy_flux(
        in_channels=4,
        out_channels=4,
        vec_in_dim=8,
        context_in_dim=8,
        hidden_size=32,
        mlp_ratio=2.0,
        num_heads=2,
        depth=1,
        depth_single_blocks=1,
        axes_dim=[4, 6, 6],
        theta=THETA,
        patch_size=2,
        qkv_bias=True,
        guidance_embed=False,
        dtype=torch.float32,
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    x, t, ctx, y = torch.randn(1, 4, 12, 20), torch.tensor([0.5]), torch.randn(1, 3, 8), torch.randn(1, 8)
    stock_pe = model.pe_embedder
    with torch.no_grad():
        ref = model(x, t, ctx, y=y)
        model.pe_embedder = RFREmbedder.from_module(stock_pe, RFRConfig(mode="none"))
        same = model(x, t, ctx, y=y)
        # 6 x 10 token grid against a 3 x 3 reference: NTK rescales both spatial axes.
        model.pe_embedder = RFREmbedder.from_module(stock_pe, RFRConfig(reference_grid=(3, 3)))
        changed = model(x, t, ctx, y=y)
    assert torch.equal(same, ref)
    assert (changed - ref).abs().max() > 1e-3


def test_pos_embed_swap_in_diffusers_transformer() -> None:
    """The headless swap: ``transformer.pos_embed = RFRPosEmbed.from_module(...)``."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=8,
        pooled_projection_dim=8,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    ids = flux_ids(3, 6, 10)[0]
    inputs = {
        "hidden_states": torch.randn(1, 60, 16),
        "encoder_hidden_states": torch.randn(1, 3, 8),
        "pooled_projections": torch.randn(1, 8),
        "timestep": torch.tensor([0.5]),
        "img_ids": ids[3:],
        "txt_ids": ids[:3],
        "return_dict": False,
    }
    stock = model.pos_embed
    with torch.no_grad():
        ref = model(**inputs)[0]
        model.pos_embed = RFRPosEmbed.from_module(stock, RFRConfig(mode="none"))
        same = model(**inputs)[0]
        model.pos_embed = RFRPosEmbed.from_module(stock, RFRConfig(reference_grid=(3, 3)))
        changed = model(**inputs)[0]
    assert torch.equal(same, ref)
    assert (changed - ref).abs().max() > 1e-3
