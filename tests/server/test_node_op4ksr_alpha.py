"""``OP4KSR_Upscale`` keeps alpha: RGBA in, RGBA out, the alpha resized (not generated), the colour as for RGB.

Real server, the tiny detectable FLUX.1 and F16 VAE of ``tiny_models``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer
from op4ksr_node_fixtures import models, small  # noqa: F401 - server with the tiny OP4KSR models installed
from sr4k.srkit.sizing import resize_exact
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


@pytest.mark.parametrize("long_side", [100])  # x3.57 of the 28 px wide input: a real resize
def test_rgba_keeps_its_alpha_at_the_target_size(models: ComfyServer, long_side: int) -> None:
    rgb = small(api_workflow("op4ksr_upscale_4k"), long_side)
    rgba = small(api_workflow("op4ksr_upscale_4k"), long_side)
    rgba["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "green"}}
    rgba["6"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["5", 0]}}
    rgba["3"]["inputs"]["image"] = ["6", 0]
    plain = models.images(models.run(rgb), "4")[0]
    out = models.images(models.run(rgba), "4")[0]
    assert out.shape == (*plain.shape[:2], 4)
    np.testing.assert_array_equal(out[..., :3], plain)  # alpha never reaches the model
    lr = np.asarray(Image.open(models.input_dir / "sr4k_example_lowres.png").convert("RGB"))
    alpha = 1 - torch.from_numpy(lr[..., 1].copy()).float()[None, None] / 255  # JoinImageWithAlpha: 1 - mask
    expected = resize_exact(alpha, plain.shape[:2])[0, 0].numpy()
    assert np.abs(out[..., 3] / 255.0 - expected).max() <= 1 / 255 + 1e-6  # SaveImage truncates to 8 bits
    assert out[..., 3].std() > 5  # a real alpha, not a constant
