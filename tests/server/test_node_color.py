"""``SR4K_ColorCorrect`` inside the real ComfyUI server."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer, PromptError, execution_error
from sr4k.srkit.color import color_correct
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


def _write(server: ComfyServer, name: str, array: np.ndarray) -> None:
    Image.fromarray(array).save(server.input_dir / name)


def _example_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    low = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    up = np.array(Image.fromarray(low).resize((64, 48), Image.BICUBIC)).astype(np.int16)
    up = np.clip(up + np.array([25, -15, 20]), 0, 255).astype(np.uint8)  # a colour cast
    return up, low


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float().div(255).permute(2, 0, 1)[None]


@pytest.mark.parametrize("method", ["wavelet", "adain", "lab", "none"])
def test_bundled_workflow_corrects_colour(comfy_server: ComfyServer, method: str) -> None:
    up, low = _example_images()
    _write(comfy_server, "sr4k_example_upscaled.png", up)
    _write(comfy_server, "sr4k_example_lowres.png", low)
    prompt = api_workflow("color_correct")
    prompt["3"]["inputs"]["method"] = method
    entry = comfy_server.run(prompt)
    (out,) = comfy_server.images(entry, "4")
    assert out.shape == up.shape
    expected = color_correct(_to_tensor(up), _to_tensor(low), method)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out / 255.0, expected, atol=1.0 / 255 + 1e-6)
    if method != "none":  # the cast is gone: mean colour back near the reference's
        assert np.abs(out.reshape(-1, 3).mean(0) - low.reshape(-1, 3).mean(0)).max() < 4.0


def test_object_info_lists_every_node_with_tooltips(comfy_server: ComfyServer) -> None:
    import json

    from comfy_harness import REPO

    info = comfy_server.get_json("/object_info")
    ids = json.loads((REPO / "node_list.json").read_text())
    for node_id in ids:
        assert node_id in info, f"{node_id} not registered"
        node = info[node_id]
        assert node["description"], f"{node_id} has no description"
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def _load_pair_prompt(up_name: str, ref_name: str) -> dict:
    prompt = api_workflow("color_correct")
    prompt["1"]["inputs"]["image"] = up_name
    prompt["2"]["inputs"]["image"] = ref_name
    return prompt


def test_mismatched_batch_is_a_clear_error_and_server_goes_on(comfy_server: ComfyServer) -> None:
    up, low = _example_images(1)
    _write(comfy_server, "sr4k_up_b.png", up)
    _write(comfy_server, "sr4k_low_b.png", low)
    prompt = _load_pair_prompt("sr4k_up_b.png", "sr4k_low_b.png")
    # Three references against two images: RepeatImageBatch is a core node.
    prompt["5"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    prompt["6"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 3}}
    prompt["3"]["inputs"]["image"] = ["5", 0]
    prompt["3"]["inputs"]["reference"] = ["6", 0]
    with pytest.raises(PromptError) as err:
        comfy_server.run(prompt)
    msg = execution_error(err.value.payload)
    assert msg["node_type"] == "SR4K_ColorCorrect"
    assert "batch size mismatch: 2 upscaled image(s) but 3 reference" in msg["exception_message"]
    # The server keeps serving.
    entry = comfy_server.run(_load_pair_prompt("sr4k_up_b.png", "sr4k_low_b.png"))
    assert comfy_server.images(entry, "4")[0].shape == up.shape


def test_one_channel_image_is_a_clear_error(comfy_server: ComfyServer) -> None:
    up, low = _example_images(2)
    _write(comfy_server, "sr4k_up_c.png", up)
    _write(comfy_server, "sr4k_low_c.png", low)
    prompt = _load_pair_prompt("sr4k_up_c.png", "sr4k_low_c.png")
    # LoadImage's MASK output turned into a 1-channel IMAGE-shaped tensor by a core node.
    prompt["5"] = {"class_type": "MaskToImage", "inputs": {"mask": ["1", 1]}}
    prompt["7"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}
    prompt["8"] = {"class_type": "SR4KTest_MaskAsImage", "inputs": {"mask": ["7", 0]}}
    prompt["3"]["inputs"]["image"] = ["8", 0]
    del prompt["5"]
    with pytest.raises(PromptError) as err:
        comfy_server.run(prompt)
    msg = execution_error(err.value.payload)["exception_message"]
    assert "1 channel(s)" in msg and "RGB" in msg


def test_empty_batch_is_a_clear_error(comfy_server: ComfyServer) -> None:
    up, low = _example_images(3)
    _write(comfy_server, "sr4k_up_d.png", up)
    _write(comfy_server, "sr4k_low_d.png", low)
    prompt = _load_pair_prompt("sr4k_up_d.png", "sr4k_low_d.png")
    prompt["5"] = {"class_type": "SR4KTest_EmptyImageBatch", "inputs": {"image": ["1", 0]}}
    prompt["3"]["inputs"]["image"] = ["5", 0]
    with pytest.raises(PromptError) as err:
        comfy_server.run(prompt)
    assert "empty batch" in execution_error(err.value.payload)["exception_message"]
