"""F16 VAE: BFL <-> diffusers key layouts, checkpoint detection and errors, and a tiny FLUX-style VAE checked
against diffusers' AutoencoderKL and ComfyUI's LDM Encoder/Decoder (independent references for both layouts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.config import FLUX_F16, VaeConfig
from sr4k.op4ksr_core.vae.keys import (
    bfl_to_diffusers_vae,
    detect_vae_layout,
    diffusers_to_bfl_vae,
    to_diffusers_layout,
)
from sr4k.op4ksr_core.vae.loader import check_vae_state_dict, expected_vae_shapes, load_f16_vae

# Smallest FLUX-shaped VAE ComfyUI's LDM blocks accept (they hard-code 32 norm groups).
TINY_F8 = VaeConfig(
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    input_stride=1,
    scaling_factor=FLUX_F16.scaling_factor,
    shift_factor=FLUX_F16.shift_factor,
)


def tiny_state_dict(config: VaeConfig = TINY_F8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: 0.2 * torch.randn(shape, generator=g) for k, shape in expected_vae_shapes(config).items()}


def manifest_meta_state_dict(fixtures_dir: Path) -> dict[str, torch.Tensor]:
    manifest = json.loads((fixtures_dir / "f16vae" / "state_dict_manifest.json").read_text())
    return {e["key"]: torch.empty(e["shape"], device="meta") for e in manifest["entries"]}


def test_manifest_is_exactly_our_module(fixtures_dir: Path) -> None:
    sd = manifest_meta_state_dict(fixtures_dir)
    expected = expected_vae_shapes(FLUX_F16)
    assert sd.keys() == expected.keys()
    assert all(sd[k].shape == v for k, v in expected.items())
    check_vae_state_dict(sd)


def test_flux_bfl_names_and_round_trip(fixtures_dir: Path) -> None:
    sd = manifest_meta_state_dict(fixtures_dir)
    bfl = diffusers_to_bfl_vae(sd)
    assert len(bfl) == len(sd) == 244
    # Decoder level order is reversed: diffusers up_blocks.0 (512 ch, applied first) is BFL up.3.
    assert (
        bfl["decoder.up.3.upsample.conv.weight"].shape
        == sd["decoder.up_blocks.0.upsamplers.0.conv.weight"].shape
    )
    assert "decoder.up.0.upsample.conv.weight" not in bfl  # the last level has no upsample
    assert bfl["decoder.up.1.block.0.nin_shortcut.weight"].shape == (256, 512, 1, 1)
    assert bfl["encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert bfl["encoder.norm_out.weight"].shape == (512,)
    assert detect_vae_layout(bfl) == "bfl" and detect_vae_layout(sd) == "diffusers"
    back = bfl_to_diffusers_vae(bfl)
    assert list(back) == list(sd) and all(back[k].shape == sd[k].shape for k in sd)


def test_round_trip_keeps_values() -> None:
    sd = tiny_state_dict()
    back = bfl_to_diffusers_vae(diffusers_to_bfl_vae(sd))
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


def test_bfl_layout_matches_diffusers_single_file_converter() -> None:
    """diffusers' own LDM->diffusers converter (independent code) must undo our diffusers->BFL conversion."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = VaeConfig(**{**FLUX_F16.__dict__, "block_out_channels": (32, 64, 64), "layers_per_block": 2})
    sd = tiny_state_dict(config)
    theirs = convert_ldm_vae_checkpoint(
        diffusers_to_bfl_vae(sd), {"down_block_types": ["x"] * 3, "up_block_types": ["x"] * 3}
    )
    assert theirs.keys() == sd.keys()
    assert all(torch.equal(theirs[k].reshape(sd[k].shape), sd[k]) for k in sd)


def test_tiny_f8_matches_diffusers_autoencoder() -> None:
    """With stride 1 and the aligned tail our network is diffusers' AutoencoderKL (FLUX options)."""
    from diffusers import AutoencoderKL

    ref = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=TINY_F8.block_out_channels,
        layers_per_block=TINY_F8.layers_per_block,
        latent_channels=TINY_F8.latent_channels,
        norm_num_groups=TINY_F8.norm_num_groups,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()
    ours = load_f16_vae(ref.state_dict(), "aligned", config=TINY_F8, chunk_rows=5)
    x = torch.rand(2, 3, 24, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        mean, logvar = ours.encode_moments(x)
        torch.testing.assert_close(mean, dist.mean, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(logvar, dist.logvar, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.decode(mean), ref.decode(mean).sample, rtol=1e-4, atol=1e-4)


@pytest.mark.comfy
def test_tiny_f8_bfl_layout_matches_comfyui_ldm_blocks() -> None:
    """Load the same BFL-layout tensors into ComfyUI's Encoder/Decoder and into ours (via our converter)."""
    from comfy_tree import import_comfy

    import_comfy()
    from comfy.diffusers_convert import convert_vae_state_dict
    from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder

    # ComfyUI's converter hard-codes FLUX's 4 levels and 2 resnets per level.
    config = VaeConfig(**{**TINY_F8.__dict__, "block_out_channels": (32, 32, 64, 64), "layers_per_block": 2})
    ddconfig = {
        "ch": 32,
        "out_ch": 3,
        "ch_mult": [1, 1, 2, 2],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "in_channels": 3,
        "resolution": 64,
        "z_channels": 4,
        "double_z": True,
    }
    bfl = diffusers_to_bfl_vae(tiny_state_dict(config, seed=5))
    # ComfyUI's diffusers->LDM converter agrees with ours on names and shapes.
    comfy_bfl = convert_vae_state_dict(bfl_to_diffusers_vae(bfl))
    assert comfy_bfl.keys() == bfl.keys()
    assert all(torch.equal(comfy_bfl[k].reshape(bfl[k].shape), bfl[k]) for k in bfl)
    enc, dec = Encoder(**ddconfig), Decoder(**ddconfig)
    enc.load_state_dict({k[8:]: v for k, v in bfl.items() if k.startswith("encoder.")})
    dec.load_state_dict({k[8:]: v for k, v in bfl.items() if k.startswith("decoder.")})
    ours = load_f16_vae(bfl, "aligned", config=config)
    x = torch.rand(1, 3, 16, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        mean, logvar = ours.encode_moments(x)
        torch.testing.assert_close(torch.cat([mean, logvar], 1), enc(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.decode(mean), dec(mean), rtol=1e-4, atol=1e-4)


def test_checkpoint_prefix_and_legacy_attention_names() -> None:
    sd = tiny_state_dict()
    full = {f"first_stage_model.{k}": v for k, v in diffusers_to_bfl_vae(sd).items()}
    full["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)
    assert to_diffusers_layout(full).keys() == sd.keys()
    legacy = {k.replace("to_q", "query").replace("to_out.0", "proj_attn"): v for k, v in sd.items()}
    out = to_diffusers_layout(legacy)
    assert out.keys() == sd.keys() and torch.equal(
        out["encoder.mid_block.attentions.0.to_q.weight"], sd["encoder.mid_block.attentions.0.to_q.weight"]
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["double_blocks.0.img_attn.qkv.weight", "img_in.weight"], "FLUX transformer in BFL/ComfyUI layout"),
        (
            ["transformer_blocks.0.attn.to_q.weight", "single_transformer_blocks.0.proj_out.weight"],
            "diffusers layout",
        ),
        (["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"], "a LoRA"),
        (["text_model.embeddings.token_embedding.weight"], "CLIP text encoder"),
        (["foo.weight"], r"unrecognised state dict \(1 tensors; first keys: foo.weight\)"),
    ],
)
def test_not_a_vae_says_what_it_is(keys: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_f16_vae({k: torch.zeros(1) for k in keys})
    assert "Expected a FLUX.1 VAE" in str(info.value)


def test_sd1_vae_is_named() -> None:
    sd1_like = VaeConfig(**{**TINY_F8.__dict__, "latent_channels": 4})
    sd = diffusers_to_bfl_vae(tiny_state_dict(sd1_like))
    sd |= {"quant_conv.weight": torch.zeros(8, 8, 1, 1), "post_quant_conv.weight": torch.zeros(4, 4, 1, 1)}
    with pytest.raises(
        ValueError, match=r"SD1/SDXL VAE \(latent channels 4; quant convs: post_quant_conv.weight"
    ):
        load_f16_vae(sd, config=VaeConfig(**{**TINY_F8.__dict__, "latent_channels": 16}))


def test_missing_unexpected_and_wrong_shapes_are_named() -> None:
    sd = tiny_state_dict()
    del sd["decoder.conv_out.bias"]
    sd["decoder.conv_in.bias"] = torch.zeros(7)
    with pytest.raises(
        ValueError,
        match=r"missing 1: decoder.conv_out.bias.*wrong shape 1: decoder.conv_in.bias \(7,\) != \(64,\)",
    ):
        load_f16_vae(sd, "aligned", config=TINY_F8)
    decoder_only = {k: v for k, v in tiny_state_dict().items() if k.startswith("decoder.")}
    with pytest.raises(ValueError, match="whole encoder is absent"):
        load_f16_vae(decoder_only, "aligned", config=TINY_F8)
    with pytest.raises(
        ValueError, match=r"1 key\(s\) are not part of a diffusers-layout FLUX VAE: encoder.extra.weight"
    ):
        load_f16_vae(tiny_state_dict() | {"encoder.extra.weight": torch.zeros(1)}, "aligned", config=TINY_F8)
    mixed = tiny_state_dict() | {"encoder.down.0.block.0.norm1.weight": torch.zeros(32)}
    with pytest.raises(ValueError, match="mixes BFL keys"):
        load_f16_vae(mixed, config=TINY_F8)


def test_loader_dtype_device_and_mode_options() -> None:
    sd = tiny_state_dict()
    vae = load_f16_vae(sd, "aligned", config=TINY_F8, dtype=torch.bfloat16, chunk_rows=3)
    assert (
        isinstance(vae, F16VAE) and vae.dtype == torch.bfloat16 and vae.chunk_rows == 3 and not vae.training
    )
    assert vae.device == torch.device("cpu")
    fp8 = {k: v.to(torch.float8_e4m3fn) for k, v in sd.items()}
    with pytest.raises(ValueError, match="pass dtype=torch.bfloat16"):
        load_f16_vae(fp8, "aligned", config=TINY_F8)
    assert load_f16_vae(fp8, "aligned", config=TINY_F8, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="needs input_stride=2"):
        load_f16_vae(sd, "partitioned", config=TINY_F8)
    with pytest.raises(ValueError, match="chunk_rows=0"):
        load_f16_vae(sd, "aligned", config=TINY_F8, chunk_rows=0)
    with pytest.raises(TypeError, match="mapping"):
        load_f16_vae([1, 2])  # type: ignore[arg-type]


def test_loader_decode_mode_auto_reads_the_file_then_the_key_layout(tmp_path: Path) -> None:
    """``load_f16_vae``'s default is the nodes' and CLI's ``auto``: raw BFL weights decode aligned."""
    from safetensors.torch import save_file

    from small_vae import small_f16_vae
    from sr4k.op4ksr_core.settings import OP4KSRSettings, to_metadata

    diffusers = {k: v.contiguous() for k, v in small_f16_vae().state_dict().items()}
    config = small_f16_vae().config
    assert load_f16_vae(diffusers_to_bfl_vae(diffusers), config=config).decode_mode == "aligned"
    assert load_f16_vae(diffusers, config=config).decode_mode == "partitioned"
    tagged = tmp_path / "raw_flux_vae_diffusers.safetensors"
    save_file(diffusers, str(tagged), metadata=to_metadata(OP4KSRSettings(decode_mode="aligned")))
    assert load_f16_vae(tagged, config=config).decode_mode == "aligned"  # the file's metadata wins
    assert (
        load_f16_vae(tagged, "partitioned", config=config).decode_mode == "partitioned"
    )  # and a choice wins
