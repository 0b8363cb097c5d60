"""The default OP4KSR recipe (latent MSE + LPIPS + L_AP 'difference') on the CPU smoke set, and weights that carry
their settings: the LoRA export and the full fine-tune export write ``sr4k.op4ksr`` metadata."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from op4ksr_train_support import HR_SIDE, config, data, fresh_accelerate_state, small_flux, small_vae  # noqa: F401
from sr4k.op4ksr_core.flux.keys import diffusers_to_bfl
from sr4k.op4ksr_core.lora import merge_comfy_lora
from sr4k.op4ksr_core.settings import METADATA_KEY, OP4KSRSettings, read_settings, to_metadata
from sr4k.training.op4ksr import TrainResult, train
from sr4k.training.op4ksr.config import OP4KSRTrainConfig
from sr4k.training.op4ksr.export import export_merged
from tiny_models import deterministic_state_dict, deterministic_tensor

SMOKE_STEPS = 12


def test_the_default_recipe() -> None:
    cfg = OP4KSRTrainConfig()
    assert (cfg.latent_loss, cfg.latent_weight, cfg.pixel_weight) == ("mse", 1.0, 0.0)
    assert (cfg.perceptual, cfg.perceptual_weight, cfg.lambda_ap, cfg.ap.domain) == (
        "lpips",
        1.0,
        0.1,
        "difference",
    )
    assert (cfg.input_mode, cfg.t_star, cfg.canvas_long_side, cfg.decode_mode) == (
        "direct",
        0.5,
        4096,
        "auto",
    )


@pytest.fixture(scope="module")
def smoke(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The default recipe's loss mix on the smoke set; LPIPS-VGG's trunk is not on CPU test machines, so the
    perceptual term is the stand-in (same weight and place in the mix)."""
    defaults = OP4KSRTrainConfig()
    cfg = config(
        data,
        tmp_path_factory.mktemp("recipe"),
        crop_size=HR_SIDE,
        steps=SMOKE_STEPS,
        checkpoint_every=SMOKE_STEPS,
        perceptual="standin",
        perceptual_weight=defaults.perceptual_weight,
        lambda_ap=defaults.lambda_ap,
        ap=defaults.ap,
        t_star=0.37,
    )
    return train(cfg, transformer=small_flux(), vae=small_vae())


def test_default_recipe_trains_on_the_cpu_smoke_set(smoke: TrainResult) -> None:
    assert [sorted(h) for h in smoke.history] == [["ap", "latent", "perceptual", "total"]] * SMOKE_STEPS
    curve = {k: [h[k] for h in smoke.history] for k in ("total", "latent", "perceptual", "ap")}
    first, last = (
        {k: float(np.mean(v[sl])) for k, v in curve.items()} for sl in (slice(0, 3), slice(-3, None))
    )
    print("loss curve (mean of steps 1-3 -> 10-12):", {k: f"{first[k]:.4f} -> {last[k]:.4f}" for k in curve})
    # The random-weight decoder makes most of the perceptual distance irreducible: the total falls less than
    # its parts. Measured: total 0.88 -> 0.77, latent 0.14 -> 0.06, L_AP 0.12 -> 0.05 over 24 steps.
    assert last["total"] < 0.95 * first["total"], (first, last)
    assert last["latent"] < 0.8 * first["latent"] and last["ap"] < first["ap"]
    assert last["perceptual"] < 1.01 * first["perceptual"]
    # L_AP "difference" only counts periodicity in excess of the HR's: its weighted share stays small.
    assert 0.1 * last["ap"] < 0.2 * last["total"]


def test_lora_export_carries_the_settings(smoke: TrainResult) -> None:
    settings = read_settings(smoke.lora_path)
    assert settings == OP4KSRSettings(
        t_star=0.37,
        input_mode="direct",
        rfr_mode="ntk",
        rfr_alpha=1.0,
        reference_tokens=64,
        decode_mode="aligned",
        canvas_long_side=4096,
        guidance=3.5,  # the trainer's guidance, which inference must reuse
    )
    from sr4k.op4ksr_core.settings import read_metadata

    meta = read_metadata(smoke.lora_path)
    assert json.loads(meta["config"])["t_star"] == 0.37 and meta["sr4k"] == "op4ksr" and METADATA_KEY in meta


def _flux128() -> torch.nn.Module:
    """A diffusers FLUX with FLUX.1's 128-dim head (one head) and RoPE split: what the FLUX detector accepts."""
    from diffusers import FluxTransformer2DModel

    cfg = dict(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=128,
        num_attention_heads=1,
        joint_attention_dim=16,
        pooled_projection_dim=8,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    )
    with torch.device("meta"):
        model = FluxTransformer2DModel(**cfg)
    model.load_state_dict(
        deterministic_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}), assign=True
    )
    return model


def test_full_finetune_export_merges_the_lora_and_carries_the_settings(tmp_path: Path) -> None:
    from sr4k.training.op4ksr.lora import add_lora, save_comfy_lora

    base = _flux128()
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(tmp_path / "base.safetensors"))
    peft = _flux128()
    add_lora(peft, 2, 2.0, OP4KSRTrainConfig.lora_double_targets, OP4KSRTrainConfig.lora_single_targets)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.copy_(0.01 * deterministic_tensor(name, tuple(p.shape)))
    settings = OP4KSRSettings(t_star=0.37, input_mode="direct", rfr_mode="ntk", decode_mode="partitioned")
    lora = save_comfy_lora(peft, tmp_path / "lora.safetensors", torch.float32, to_metadata(settings))
    out = export_merged(tmp_path / "base.safetensors", lora, tmp_path / "ft.safetensors", dtype=torch.float32)
    assert read_settings(out) == settings
    merge_comfy_lora(base, lora)
    want, plain = diffusers_to_bfl(base.state_dict()), diffusers_to_bfl(_flux128().state_dict())
    got = load_file(str(out))
    assert set(got) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)
    assert any(not torch.equal(want[k], plain[k]) for k in want)  # the LoRA is in the weights
    bare = tmp_path / "bare_lora.safetensors"
    save_file(load_file(str(lora)), str(bare))  # same tensors, no metadata
    with pytest.raises(ValueError, match="carries no sr4k.op4ksr settings"):
        export_merged(tmp_path / "base.safetensors", bare, tmp_path / "ft2.safetensors", dtype=torch.float32)


def test_config_rejects_what_the_settings_cannot_carry() -> None:
    cfg = dataclasses.replace(OP4KSRTrainConfig(), decode_mode="partitioned")
    assert cfg.settings("partitioned").decode_mode == "partitioned"


def test_settings_carry_guidance_and_say_what_they_cannot_carry() -> None:
    from sr4k.op4ksr_core.rfr import RFRConfig

    assert OP4KSRTrainConfig(guidance=1.0).settings("aligned").guidance == 1.0
    assert OP4KSRTrainConfig().unstorable_rfr() is None  # the defaults are all carried
    wide = OP4KSRTrainConfig(rfr=RFRConfig(mode="ntk", reference_grid=(64.0, 96.0)))
    assert wide.settings("aligned").reference_tokens is None
    note = wide.unstorable_rfr()
    assert note is not None and "(64.0, 96.0)" in note and "set_rfr" in note
    assert OP4KSRTrainConfig(rfr=RFRConfig(mode="none", reference_grid=(64.0, 96.0))).unstorable_rfr() is None
