"""``dype`` needs each model call's sigma: the diffusers forward hook and the ComfyUI wrapper deliver it.

Effects are measured on a tiny FLUX with sharpened q/k norms (rfr_support), where RoPE changes move the
velocity by ~20 %; random-weight attention would be nearly position-blind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer
from rfr_support import sharp_tiny_flux_bfl_file, sharp_tiny_flux_diffusers
from sr4k.op4ksr_core.flux.forward import set_rfr, velocity
from sr4k.op4ksr_core.flux.loader import load_flux_transformer
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.onestep import OneStepConfig
from sr4k.op4ksr_core.rfr import RFRConfig
from sr4k.op4ksr_core.vae.loader import load_f16_vae
from tiny_models import f16_vae_file, install_op4ksr_models, load
from workflow_files import api_workflow

REF = 4  # reference tokens per side: an 8 x 8 token grid is s = 2, like 4096 px against FLUX's 64


@pytest.fixture
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.slow
@torch.no_grad()
def test_headless_hook_hands_the_timestep_to_dype(one_thread: object) -> None:
    transformer = sharp_tiny_flux_diffusers()
    x = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(0))  # 8 x 8 tokens
    config = OneStepConfig(t_star=0.3)
    set_rfr(transformer, RFRConfig(mode="none"))
    v_none = velocity(transformer, x, 0.3, config)
    set_rfr(transformer, RFRConfig(mode="yarn", reference_grid=(REF, REF)))
    v_yarn = velocity(transformer, x, 0.3, config)
    set_rfr(transformer, RFRConfig(mode="dype", reference_grid=(REF, REF)))
    v_hook = velocity(transformer, x, 0.3, config)
    assert transformer.pos_embed.sigma == pytest.approx(0.3)
    # Without the hook the embedder keeps whatever sigma it is given.
    transformer._sr4k_sigma_hook.remove()
    transformer.pos_embed.sigma = 0.3
    assert torch.equal(velocity(transformer, x, 0.3, config), v_hook)
    transformer.pos_embed.sigma = None  # = 1.0, where dype equals yarn
    assert torch.equal(velocity(transformer, x, 0.3, config), v_yarn)
    assert _rel(v_yarn, v_none) > 0.1  # yarn moves the velocity
    assert _rel(v_hook, v_yarn) > 0.1  # and at sigma 0.3 dype is far from yarn


@pytest.fixture(scope="module")
def sharp(comfy_server: ComfyServer) -> ComfyServer:
    install_op4ksr_models(comfy_server)
    link = comfy_server.models / "diffusion_models" / "sr4k_test_sharp_flux.safetensors"
    if not link.exists():
        link.symlink_to(sharp_tiny_flux_bfl_file())
    return comfy_server


def _exploded(mode: str, long_side: int = 256) -> dict:
    prompt = api_workflow("op4ksr_exploded")
    prompt["2"]["inputs"]["unet_name"] = "sr4k_test_sharp_flux.safetensors"
    prompt["3"]["inputs"].update(rfr_mode=mode, reference_tokens=REF)
    prompt["5"]["inputs"]["largest_size"] = long_side  # the example image is 4:3
    return prompt


@pytest.mark.comfy
@pytest.mark.slow
def test_comfy_wrapper_hands_the_sigma_to_dype_like_the_headless_path(
    sharp: ComfyServer, one_thread: object
) -> None:
    """One step at t* = 0.5 on a 8 x 6 token grid: ComfyUI (wrapper) == diffusers (hook), and != yarn."""
    comfy = {m: sharp.images(sharp.run(_exploded(m)), "14")[0].astype(np.float64) for m in ("dype", "yarn")}
    assert comfy["dype"].shape == (192, 256, 3)
    transformer = set_rfr(
        load_flux_transformer(load(sharp_tiny_flux_bfl_file())),
        RFRConfig(mode="dype", reference_grid=(REF, REF)),
    )
    vae = load_f16_vae(load(f16_vae_file("bfl")), "aligned", dtype=torch.float32)
    lr = np.array(Image.open(sharp.input_dir / "sr4k_example_lowres.png").convert("RGB"))
    lr_t = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]
    ours = upscale_image(
        transformer, vae, lr_t, long_side=256, config=OneStepConfig(t_star=0.5, input_mode="flow")
    )
    ours8 = np.clip(ours[0].permute(1, 2, 0).numpy() * 255, 0, 255).astype(np.uint8).astype(np.float64)
    diff = np.abs(ours8 - comfy["dype"])
    assert diff.max() <= 1, f"max |diff| {diff.max()} of 255"
    gap = np.abs(comfy["dype"] - comfy["yarn"]).mean()
    assert gap > 20 * max(diff.mean(), 0.01), f"dype vs yarn {gap:.3f}, paths differ by {diff.mean():.4f}"
