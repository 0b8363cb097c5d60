"""srkit.registry: one detector for every checkpoint family, configs read from shapes, one error family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import sr4k.gtasr_core
import sr4k.op4ksr_core  # noqa: F401 - registers "flux_transformer" and "flux_vae"
from gtasr_support import TINY
from sr4k.gtasr_core import GTASRCheckpointError, build, load_gtasr
from sr4k.op4ksr_core.flux.keys import diffusers_to_bfl
from sr4k.op4ksr_core.flux.loader import load_flux_transformer
from sr4k.op4ksr_core.vae import F16VAE, FLUX_F16, load_f16_vae
from sr4k.op4ksr_core.vae.config import VaeConfig
from sr4k.op4ksr_core.vae.keys import diffusers_to_bfl_vae
from sr4k.srkit.registry import (
    CheckpointError,
    KeyCondition,
    UnknownCheckpointError,
    architectures,
    describe,
    detect,
)
from tiny_models import TINY_FLUX, tiny_flux_diffusers_model

# A FLUX VAE four times narrower than FLUX's, one block per level: the reader must find every width.
SMALL_VAE = VaeConfig(
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    latent_channels=16,
    norm_num_groups=32,
    input_stride=2,
    scaling_factor=0.3611,
    shift_factor=0.1159,
)


def _vae_state_dict(config: VaeConfig, device: str = "cpu") -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in F16VAE(config, decode_mode="aligned").state_dict().items()}
    return {k: torch.zeros(s, device=device) for k, s in shapes.items()}


def test_every_family_is_registered_once() -> None:
    ids = [a.id for a in architectures()]
    assert sorted(ids) == ["flux_transformer", "flux_vae", "gtasr"]


def test_gtasr_descriptor_reads_the_config() -> None:
    found = detect(build(TINY).state_dict())
    assert (found.arch, found.layout, found.config) == ("gtasr", "basicsr", TINY)
    assert (found.scale, found.size_multiple, found.latent_channels) == (4, TINY.lr_multiple, None)


@pytest.mark.parametrize("layout", ["bfl", "diffusers"])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_flux_descriptor_reads_the_config_in_both_layouts(layout: str, prefix: str) -> None:
    sd = tiny_flux_diffusers_model().state_dict()
    if layout == "bfl":
        sd = diffusers_to_bfl(sd)
    found = detect({prefix + k: v for k, v in sd.items()})
    expected = {k: v for k, v in TINY_FLUX.items() if k != "patch_size"}
    assert (found.arch, found.layout, found.prefix) == ("flux_transformer", layout, prefix)
    assert found.config == expected
    assert (found.latent_channels, found.size_multiple, found.scale) == (16, 2, 1)


@pytest.mark.parametrize("layout", ["bfl", "diffusers"])
def test_vae_descriptor_reads_widths_and_keeps_the_f16_geometry(layout: str) -> None:
    sd = _vae_state_dict(SMALL_VAE)
    if layout == "bfl":
        sd = diffusers_to_bfl_vae(sd)
    found = detect({"first_stage_model." + k: v for k, v in sd.items()})
    assert (found.arch, found.layout, found.prefix) == ("flux_vae", layout, "first_stage_model.")
    assert found.config == SMALL_VAE
    assert (found.scale, found.size_multiple, found.latent_channels) == (8, 8, 16)
    assert detect(_vae_state_dict(FLUX_F16, "meta")).config == FLUX_F16  # shapes only: no memory
    # The loader builds the detected config without being told it.
    assert load_f16_vae(sd, "aligned").config == SMALL_VAE


@pytest.mark.parametrize(
    ("keys", "looks_like"),
    [
        (["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"], "a LoRA"),
        (["double_blocks.0.img_attn.qkv.lora_A.weight"], "a LoRA"),
        (["text_model.encoder.layers.0.mlp.fc1.weight"], "a CLIP text encoder"),
        (["conv_first.weight", "body.0.RRDB1.conv1.weight"], "an ESRGAN/RRDBNet upscaler"),
        (["foo.weight"], r"an unrecognised state dict \(1 tensors; first keys: foo.weight\)"),
    ],
)
def test_unknown_files_are_named(keys: list[str], looks_like: str) -> None:
    sd = {k: torch.zeros(1) for k in keys}
    with pytest.raises(
        UnknownCheckpointError, match=f"my.safetensors is not a model sr4k loads: it looks like {looks_like}"
    ):
        detect(sd, "my.safetensors")
    assert issubclass(UnknownCheckpointError, CheckpointError) and issubclass(CheckpointError, ValueError)


def test_every_loader_raises_the_one_error_family(tmp_path: Path) -> None:
    """A file of the wrong family is a CheckpointError from each loader, naming what it is."""
    vae_file = tmp_path / "ae.safetensors"
    save_file(diffusers_to_bfl_vae(_vae_state_dict(SMALL_VAE)), str(vae_file))
    gtasr_file = tmp_path / "gtasr.safetensors"
    save_file(build(TINY).state_dict(), str(gtasr_file))
    with pytest.raises(GTASRCheckpointError, match="looks like a VAE"):
        load_gtasr(vae_file)
    with pytest.raises(
        CheckpointError, match="gtasr.safetensors is a gtasr checkpoint, not a FLUX transformer"
    ):
        load_flux_transformer(gtasr_file)
    with pytest.raises(CheckpointError, match="looks like a GTASR network"):
        load_f16_vae(gtasr_file)
    assert issubclass(GTASRCheckpointError, CheckpointError)


def test_loaders_take_a_path_or_a_state_dict(tmp_path: Path) -> None:
    sd = tiny_flux_diffusers_model().state_dict()
    path = tmp_path / "flux.safetensors"
    save_file({k: v.contiguous() for k, v in diffusers_to_bfl(sd).items()}, str(path))
    from_path, from_dict = load_flux_transformer(path), load_flux_transformer(sd, dtype=torch.bfloat16)
    assert (
        next(from_path.parameters()).dtype == torch.float32
        and next(from_dict.parameters()).dtype == torch.bfloat16
    )
    torch.testing.assert_close(
        from_path.state_dict(),
        {k: v.float() for k, v in from_dict.state_dict().items()},
        rtol=1e-2,
        atol=1e-2,
    )


def test_describe_and_key_conditions() -> None:
    assert describe({"model.map_layer0.weight": torch.zeros(1)}) == "a GTASR network"
    assert KeyCondition(all_of=("a", "b")).matches(["xa", "yb"]) and not KeyCondition(
        all_of=("a", "b")
    ).matches(["a"])
    with pytest.raises(ValueError, match="at least one fragment"):
        KeyCondition()
