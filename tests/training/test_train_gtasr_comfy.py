"""A checkpoint written by the GTASR trainer upscales in the real ComfyUI server (GTASR_LoadModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer
from gtasr_support import SAVED_8BIT_ATOL
from gtasr_train_support import one_thread, tiny_config, write_images
from sr4k.gtasr_core import load_gtasr, upscale
from sr4k.training.gtasr import train
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def test_trained_checkpoint_upscales_in_comfyui(comfy_server: ComfyServer, tmp_path):
    config = tiny_config(1, write_images(tmp_path / "data"), tmp_path / "out", total_steps=4, save_every=4)
    result = train(config)
    folder = comfy_server.models / "gtasr"
    files = {
        "sr4k_trained_tiny.pth": result.weights,
        "sr4k_trained_tiny.safetensors": tmp_path / "out" / "gtasr_stage1_ema.safetensors",
    }
    for name, src in files.items():
        (folder / name).write_bytes(src.read_bytes())
    rng = np.random.default_rng(0)
    lr = (rng.random((20, 28, 3)) * 255).astype(np.uint8)  # not a multiple of 8: the node pads
    Image.fromarray(lr).save(comfy_server.input_dir / "sr4k_trained_tiny_lr.png")
    lr_t = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]
    expected = upscale(load_gtasr(result.weights), lr_t, seed=0)[0].permute(1, 2, 0).numpy()
    for name in files:
        prompt = api_workflow("gtasr_upscale")
        prompt["1"]["inputs"]["image"] = "sr4k_trained_tiny_lr.png"
        prompt["2"]["inputs"]["model_name"] = name
        out = comfy_server.images(comfy_server.run(prompt), "4")[0]
        assert out.shape == (80, 112, 3)
        np.testing.assert_allclose(out / 255.0, expected, atol=SAVED_8BIT_ATOL)
