"""BFL/ComfyUI <-> diffusers FLUX key conversion, proved on tiny models of both hosts."""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel

from comfy_tree import bfl_for_comfy_flux, comfy_flux
from sr4k.op4ksr_core.flux.keys import (
    bfl_to_diffusers,
    convert_flux_state_dict,
    detect_flux_layout,
    diffusers_to_bfl,
    strip_prefix,
)
from sr4k.op4ksr_core.rope import flux_image_ids, flux_text_ids

HIDDEN, HEADS, CTX, POOLED, LATENT_CH, PATCH = 32, 2, 32, 16, 16, 2


def tiny_diffusers(guidance: bool, layers: int = 1) -> FluxTransformer2DModel:
    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CH * PATCH * PATCH,
        num_layers=layers,
        num_single_layers=layers,
        attention_head_dim=HIDDEN // HEADS,
        num_attention_heads=HEADS,
        joint_attention_dim=CTX,
        pooled_projection_dim=POOLED,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    with torch.no_grad():  # random non-trivial weights everywhere, norms and biases included
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("guidance", [True, False])
def test_round_trip_is_identical(guidance: bool) -> None:
    sd = tiny_diffusers(guidance, layers=2).state_dict()
    bfl = diffusers_to_bfl(sd)
    assert detect_flux_layout(sd) == "diffusers" and detect_flux_layout(bfl) == "bfl"
    assert ("guidance_in.in_layer.weight" in bfl) is guidance
    assert bfl["double_blocks.1.img_attn.qkv.weight"].shape == (3 * HIDDEN, HIDDEN)
    assert bfl["single_blocks.1.linear1.weight"].shape == (3 * HIDDEN + 4 * HIDDEN, HIDDEN)
    assert bfl["double_blocks.0.txt_attn.norm.key_norm.scale"].shape == (HIDDEN // HEADS,)
    back = bfl_to_diffusers(bfl)
    assert sorted(back) == sorted(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    # Fused tensors are real concatenations and the final adaLN halves are swapped.
    torch.testing.assert_close(
        bfl["single_blocks.0.linear1.bias"][3 * HIDDEN :],
        sd["single_transformer_blocks.0.proj_mlp.bias"],
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(
        bfl["final_layer.adaLN_modulation.1.weight"][:HIDDEN],
        sd["norm_out.linear.weight"][HIDDEN:],
        rtol=0,
        atol=0,
    )


@pytest.mark.comfy
@pytest.mark.parametrize("guidance", [True, False])
def test_converted_weights_give_the_same_output_in_comfy_flux(guidance: bool) -> None:
    dm = tiny_diffusers(guidance)
    cm = comfy_flux(
        in_channels=LATENT_CH,
        out_channels=LATENT_CH,
        vec_in_dim=POOLED,
        context_in_dim=CTX,
        hidden_size=HIDDEN,
        mlp_ratio=4.0,
        num_heads=HEADS,
        depth=1,
        depth_single_blocks=1,
        axes_dim=[4, 6, 6],
        theta=10_000,
        patch_size=PATCH,
        qkv_bias=True,
        guidance_embed=guidance,
        dtype=torch.float32,
    ).eval()
    cm.load_state_dict(bfl_for_comfy_flux(cm, diffusers_to_bfl(dm.state_dict())), strict=True)

    torch.manual_seed(1)
    b, h, w, txt = 2, 8, 12, 5
    x, ctx, y = torch.randn(b, LATENT_CH, h, w), torch.randn(b, txt, CTX), torch.randn(b, POOLED)
    # Both hosts take t in [0, 1] and multiply by 1000 inside (ComfyUI: timestep_embedding's
    # time_factor; diffusers: `timestep * 1000` in forward); guidance likewise.
    t, g = torch.tensor([0.3, 0.8]), (torch.tensor([3.5, 1.0]) if guidance else None)
    hh, ww = h // PATCH, w // PATCH
    # diffusers' packing (FluxPipeline._pack_latents): 2x2 patches, channels-major inside a token.
    packed = x.reshape(b, LATENT_CH, hh, PATCH, ww, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww, -1)
    with torch.no_grad():
        out_comfy = cm(x, t, ctx, y=y, guidance=g)
        out_diff = dm(
            hidden_states=packed,
            encoder_hidden_states=ctx,
            pooled_projections=y,
            timestep=t,
            img_ids=flux_image_ids(hh, ww),
            txt_ids=flux_text_ids(txt),
            guidance=g,
            return_dict=False,
        )[0]
    out_diff = out_diff.reshape(b, hh, ww, LATENT_CH, PATCH, PATCH).permute(0, 3, 1, 4, 2, 5).reshape(x.shape)
    assert out_comfy.abs().mean() > 0.5  # a real signal, not a degenerate zero output
    torch.testing.assert_close(out_comfy, out_diff, rtol=1e-5, atol=1e-5)


def test_detection_and_errors() -> None:
    bfl = diffusers_to_bfl(tiny_diffusers(False).state_dict())
    wrapped = {"model.diffusion_model." + k: v for k, v in bfl.items()}
    with pytest.raises(ValueError, match=r"strip_prefix\(state_dict, 'model.diffusion_model.'\)"):
        detect_flux_layout(wrapped)
    assert strip_prefix(wrapped, "model.diffusion_model.").keys() == bfl.keys()
    with pytest.raises(ValueError, match="not a FLUX transformer"):
        detect_flux_layout({"encoder.conv_in.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="mixes"):
        detect_flux_layout({"img_in.weight": torch.zeros(1), "x_embedder.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no FLUX mapping.*scale_weight"):
        bfl_to_diffusers({**bfl, "img_in.scale_weight": torch.ones(1)})
    diff = bfl_to_diffusers(bfl)
    del diff["transformer_blocks.0.attn.to_k.weight"]
    with pytest.raises(ValueError, match="cannot fuse double_blocks.0.img_attn.qkv.weight"):
        diffusers_to_bfl(diff)
    with pytest.raises(ValueError, match="expected a BFL"):
        bfl_to_diffusers(bfl_to_diffusers(bfl))


def test_convert_only_when_needed_and_never_mutate() -> None:
    sd = tiny_diffusers(True).state_dict()
    keys = list(sd)
    same = convert_flux_state_dict(sd, "diffusers")
    assert same == sd and same is not sd
    bfl = convert_flux_state_dict(sd, "bfl")
    assert list(sd) == keys and detect_flux_layout(bfl) == "bfl"
    # Split parts own their storage, so the result can be saved with safetensors.
    diff = convert_flux_state_dict(bfl, "diffusers")
    ptrs = [diff[f"transformer_blocks.0.attn.to_{n}.weight"].untyped_storage().data_ptr() for n in "qkv"]
    assert len(set(ptrs)) == 3
    with pytest.raises(ValueError, match="to must be"):
        convert_flux_state_dict(sd, "comfy")  # type: ignore[arg-type]
