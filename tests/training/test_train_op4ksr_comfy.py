"""The exported OP4KSR LoRA in the real ComfyUI server: core LoraLoaderModelOnly maps every key onto FLUX.

The LoRA is made with the trainer's own code (PEFT on the diffusers twin of the detectable tiny FLUX, every
ComfyUI-mappable target, deterministic non-zero weights) and exported with ``save_comfy_lora``. The server
output must change, log no unloaded key, and equal the headless diffusers path running the same PEFT LoRA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer
from tiny_models import (
    deterministic_tensor,
    f16_vae_file,
    install_op4ksr_models,
    load,
    tiny_flux_bfl_file,
)
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy

LORA_NAME = "sr4k_test_op4ksr_lora.safetensors"
RANK, ALPHA = 4, 8.0


def _small(prompt: dict, long_side: int = 128) -> dict:
    for node in prompt.values():
        if node["class_type"] == "ImageScaleToMaxDimension":
            node["inputs"]["largest_size"] = long_side
    return prompt


def _lora_transformer() -> torch.nn.Module:
    """The tiny FLUX (as ComfyUI loads it) with a PEFT LoRA on all mappable targets, weights set non-zero."""
    from sr4k.op4ksr_core.flux.loader import load_flux_transformer
    from sr4k.training.op4ksr.lora import DOUBLE_BLOCK_TARGETS, SINGLE_BLOCK_TARGETS, add_lora

    transformer = load_flux_transformer(load(tiny_flux_bfl_file()))
    add_lora(transformer, RANK, ALPHA, DOUBLE_BLOCK_TARGETS, SINGLE_BLOCK_TARGETS)
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if p.requires_grad:  # A ~ 1/sqrt(in), B small: a clearly visible but sane delta
                p.copy_(deterministic_tensor(name, tuple(p.shape)) * (1.0 if "lora_A" in name else 0.05))
    return transformer.eval()


@pytest.fixture(scope="module")
def server(comfy_server: ComfyServer) -> ComfyServer:
    from sr4k.training.op4ksr.lora import save_comfy_lora

    install_op4ksr_models(comfy_server)
    save_comfy_lora(_lora_transformer(), comfy_server.models / "loras" / LORA_NAME, torch.float32)
    return comfy_server


def _with_lora(prompt: dict, strength: float) -> dict:
    prompt["30"] = {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"model": ["2", 0], "lora_name": LORA_NAME, "strength_model": strength},
    }
    prompt["3"]["inputs"]["model"] = ["30", 0]
    return prompt


def test_exported_lora_loads_in_comfyui_and_equals_the_headless_peft_model(server: ComfyServer) -> None:
    from sr4k.op4ksr_core.flux.forward import set_rfr
    from sr4k.op4ksr_core.headless import upscale_image
    from sr4k.op4ksr_core.onestep import OneStepConfig
    from sr4k.op4ksr_core.rfr import RFRConfig
    from sr4k.op4ksr_core.vae.loader import load_f16_vae

    log_start = len(server.log_path.read_text(errors="replace"))
    plain = server.images(server.run(_small(api_workflow("op4ksr_exploded"))), "14")[0]
    lora = server.images(server.run(_with_lora(_small(api_workflow("op4ksr_exploded")), 1.0)), "14")[0]
    log = server.log_path.read_text(errors="replace")[log_start:]
    assert "lora key not loaded" not in log, log
    assert "NOT LOADED" not in log, log
    changed = np.abs(lora.astype(int) - plain.astype(int))
    assert changed.max() >= 10 and changed.mean() > 1.0, (changed.max(), changed.mean())

    # Headless: the PEFT LoRA itself (not the exported file) on the diffusers FLUX, same RFR and one-step maths.
    transformer = set_rfr(_lora_transformer(), RFRConfig(mode="ntk"))
    vae = load_f16_vae(load(f16_vae_file("bfl")), "aligned", dtype=torch.float32)
    lr = np.array(Image.open(server.input_dir / "sr4k_example_lowres.png").convert("RGB"))
    lr_t = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]
    ours = upscale_image(
        transformer, vae, lr_t, long_side=128, config=OneStepConfig(t_star=0.5, input_mode="flow")
    )
    ours8 = np.clip(ours[0].permute(1, 2, 0).numpy() * 255, 0, 255).astype(np.uint8).astype(np.float64)
    diff = np.abs(ours8 - lora.astype(np.float64))
    print(
        f"LoRA vs plain: max {changed.max()}, mean {changed.mean():.2f}; ComfyUI vs headless PEFT: "
        f"max {diff.max()}, mean {diff.mean():.4f} (of 255)"
    )
    assert diff.max() <= 1, f"max |diff| {diff.max()} of 255"
    assert diff.mean() < 0.02


def test_lora_strength_zero_is_the_plain_model(server: ComfyServer) -> None:
    plain = server.images(server.run(_small(api_workflow("op4ksr_exploded"))), "14")[0]
    zero = server.images(server.run(_with_lora(_small(api_workflow("op4ksr_exploded")), 0.0)), "14")[0]
    np.testing.assert_array_equal(plain, zero)
