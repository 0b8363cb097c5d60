"""The bundled ``flux_refine_4k`` workflow (base FLUX + dype RoPE + F16 VAE, a few noisy steps) in the real server."""

from __future__ import annotations

import numpy as np
import pytest

from comfy_harness import ComfyServer
from tiny_models import install_op4ksr_models
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


def _small(seed: int = 42) -> dict:
    prompt = api_workflow("flux_refine_4k")
    # T5-XXL cannot be shrunk: zero conditioning from the test-only helper pack replaces the text encoders.
    for nid in ("4", "5"):
        del prompt[nid]
    prompt["5"] = {
        "class_type": "SR4KTest_ZeroFluxConditioning",
        "inputs": {"context_dim": 64, "pooled_dim": 32, "tokens": 4},
    }
    prompt["8"]["inputs"]["largest_size"] = 128  # 128 x 96 from the 4:3 example image
    prompt["10"]["inputs"]["steps"] = 2
    prompt["12"]["inputs"]["noise_seed"] = seed
    return prompt


def test_workflow_shape_as_shipped() -> None:
    prompt = api_workflow("flux_refine_4k")
    assert prompt["3"]["inputs"]["rfr_mode"] == "dype"
    assert prompt["12"]["class_type"] == "SamplerCustom" and prompt["12"]["inputs"]["add_noise"] is True
    sched = prompt["10"]["inputs"]
    assert 4 <= sched["steps"] <= 8 and 0.3 <= sched["denoise"] <= 0.5  # a refine from t* about 0.4
    assert prompt["5"]["class_type"] == "CLIPTextEncode" and prompt["5"]["inputs"]["text"]


def test_refine_runs_on_the_tiny_flux_and_adds_noise(comfy_server: ComfyServer) -> None:
    install_op4ksr_models(comfy_server)
    a = comfy_server.images(comfy_server.run(_small(42)), "15")[0].astype(np.float64)
    b = comfy_server.images(comfy_server.run(_small(7)), "15")[0].astype(np.float64)
    assert a.shape == (96, 128, 3)
    assert a.std() > 1.0  # an image, not a constant
    assert np.abs(a - b).mean() > 0.5  # the seed matters: the sampler adds noise (a generative refine)
