"""OP4KSR nodes in the real ComfyUI server, with a tiny FLUX.1 that core UNETLoader detects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comfy_harness import ComfyServer, PromptError, execution_error
from op4ksr_node_fixtures import models, small  # noqa: F401 - fixtures
from tiny_models import OP4KSR_LR_SIZE, f16_vae_file, tiny_flux_bfl_file
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy

LR_W, LR_H = OP4KSR_LR_SIZE


def test_upscale_node_equals_the_exploded_core_node_workflow(models: ComfyServer) -> None:
    prompt = small(api_workflow("op4ksr_upscale_4k"))
    prompt["3"]["inputs"].update(t_star=0.5, input_mode="flow")  # what the core sampler graph computes
    node = models.images(models.run(prompt), "4")[0]
    exploded = models.images(models.run(small(api_workflow("op4ksr_exploded"))), "14")[0]
    assert node.shape == (96, 128, 3)
    np.testing.assert_array_equal(node, exploded)
    assert node.std() > 1.0  # a real image came out, not a constant


@pytest.mark.parametrize(("long_side", "shape"), [(128, (96, 128, 3)), (100, (75, 100, 3))])
def test_output_size_follows_the_target_and_crops_padding(
    models: ComfyServer, long_side: int, shape: tuple
) -> None:
    out = models.images(models.run(small(api_workflow("op4ksr_upscale_4k"), long_side)), "4")[0]
    assert out.shape == shape


def test_rfr_changes_the_model_but_not_its_input(models: ComfyServer) -> None:
    prompt = small(api_workflow("op4ksr_exploded"))
    prompt["3"]["inputs"].update(rfr_mode="scale", alpha=4.0)
    rfr = models.images(models.run(prompt), "14")[0]
    # The same graph where the sampler uses the unpatched model: RFR's clone left it untouched.
    for nid in ("7", "9", "11"):
        prompt[nid]["inputs"]["model"] = ["2", 0]
    plain = models.images(models.run(prompt), "14")[0]
    prompt["3"]["inputs"]["rfr_mode"] = "none"
    for nid in ("7", "9", "11"):
        prompt[nid]["inputs"]["model"] = ["3", 0]
    none = models.images(models.run(prompt), "14")[0]
    np.testing.assert_array_equal(plain, none)
    assert np.abs(rfr.astype(int) - plain.astype(int)).max() > 0


def test_non_flux_model_is_a_clear_error(models: ComfyServer) -> None:
    prompt = small(api_workflow("op4ksr_exploded"))
    prompt["20"] = {"class_type": "SR4KTest_NonFluxModel", "inputs": {}}
    prompt["3"]["inputs"]["model"] = ["20", 0]
    with pytest.raises(PromptError) as err:
        models.run(prompt)
    msg = execution_error(err.value.payload)
    assert msg["node_type"] == "OP4KSR_ApplyRFR"
    assert "needs a FLUX.1 MODEL" in msg["exception_message"]
    models.run(small(api_workflow("op4ksr_upscale_4k")))  # and the server goes on


def test_wrong_file_in_the_model_loader_is_a_clear_error(models: ComfyServer) -> None:
    link = models.models / "diffusion_models" / "not_a_flux.safetensors"
    if not link.exists():
        link.symlink_to(f16_vae_file("bfl"))
    prompt = small(api_workflow("op4ksr_upscale_4k"))
    prompt["2"]["inputs"]["unet_name"] = "not_a_flux.safetensors"
    with pytest.raises(PromptError) as err:
        models.run(prompt)
    assert "FLUX.1 transformer" in execution_error(err.value.payload)["exception_message"]


def test_flux_generate_then_4k(models: ComfyServer) -> None:
    prompt = small(api_workflow("flux_generate_then_4k"))
    # T5-XXL cannot be shrunk: the test takes zero conditioning from the test-only helper pack.
    for nid in ("2", "3"):
        del prompt[nid]
    prompt["3"] = {
        "class_type": "SR4KTest_ZeroFluxConditioning",
        "inputs": {"context_dim": 64, "pooled_dim": 32, "tokens": 4},
    }
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["6"]["inputs"]["steps"] = 2
    out = models.images(models.run(prompt), "12")[0]
    assert out.shape == (128, 128, 3)


def _headless8(models: ComfyServer, guidance: float) -> np.ndarray:
    """The headless diffusers path on the node test's input and tiny weights, as SaveImage stores it."""
    import torch

    from sr4k.op4ksr_core.flux.forward import set_rfr
    from sr4k.op4ksr_core.flux.loader import load_flux_transformer
    from sr4k.op4ksr_core.headless import upscale_image
    from sr4k.op4ksr_core.onestep import OneStepConfig
    from sr4k.op4ksr_core.rfr import RFRConfig
    from sr4k.op4ksr_core.vae.loader import load_f16_vae
    from tiny_models import load

    transformer = set_rfr(load_flux_transformer(load(tiny_flux_bfl_file())), RFRConfig(mode="ntk"))
    vae = load_f16_vae(load(f16_vae_file("bfl")), "aligned", dtype=torch.float32)
    lr = np.array(Image.open(models.input_dir / "sr4k_example_lowres.png").convert("RGB"))
    lr_t = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]
    config = OneStepConfig(t_star=0.5, guidance=guidance)
    ours = upscale_image(transformer, vae, lr_t, long_side=128, config=config)
    return np.clip(ours[0].permute(1, 2, 0).numpy() * 255, 0, 255).astype(np.uint8).astype(np.float64)


def test_comfyui_path_equals_the_headless_diffusers_path(models: ComfyServer) -> None:
    """Same tiny weights: ComfyUI's FLUX + our VAE wrapper vs diffusers' FluxTransformer2DModel."""
    comfy = models.images(models.run(small(api_workflow("op4ksr_upscale_4k"))), "4")[0]
    ours8 = _headless8(models, guidance=3.5)
    assert ours8.shape == comfy.shape
    diff = np.abs(ours8 - comfy.astype(np.float64))
    assert diff.max() <= 1, f"max |diff| {diff.max()} of 255"
    assert diff.mean() < 0.02


def test_the_weights_guidance_reaches_the_model(models: ComfyServer) -> None:
    """A fine-tune trained at guidance 1.0 (OMGSR-F's value) runs at 1.0, not ComfyUI's 3.5 default."""
    from safetensors.torch import save_file

    from sr4k.op4ksr_core.settings import OP4KSRSettings, to_metadata
    from tiny_models import load

    name = "sr4k_test_op4ksr_guidance1.safetensors"
    path = models.models / "diffusion_models" / name
    if not path.exists():
        save_file(load(tiny_flux_bfl_file()), str(path), metadata=to_metadata(OP4KSRSettings(guidance=1.0)))
    prompt = small(api_workflow("op4ksr_upscale_4k"))
    prompt["2"]["inputs"]["unet_name"] = name
    comfy = models.images(models.run(prompt), "4")[0].astype(np.float64)
    at_1, at_default = _headless8(models, guidance=1.0), _headless8(models, guidance=3.5)
    assert np.abs(at_1 - comfy).max() <= 1
    margin = np.abs(at_default - comfy).max()
    assert margin >= 8, f"guidance 1.0 vs 3.5 differ by only {margin} of 255 on the tiny model"
