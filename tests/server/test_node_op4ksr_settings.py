"""Weights that carry their settings, in the real ComfyUI server: ``auto`` widgets read the ``sr4k.op4ksr``
metadata of a fine-tune, a LoRA or a VAE file, explicit widgets win, and a MODEL without it gets an honest warning.

The fine-tune file is the tiny FLUX with settings metadata (its weights equal the base file's), so a run with
``auto`` widgets must equal the base model run with those settings typed in, bit for bit.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from comfy_harness import ComfyServer
from sr4k.op4ksr_core.settings import OP4KSRSettings, to_metadata
from tiny_models import f16_vae_file, install_op4ksr_models, load, tiny_flux_bfl_file
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy

FT, LORA, VAE_PART = (
    "sr4k_test_op4ksr_ft.safetensors",
    "sr4k_test_op4ksr_meta_lora.safetensors",
    "sr4k_test_vae_meta.safetensors",
)
TRAINED = OP4KSRSettings(
    t_star=0.3,
    input_mode="flow",
    rfr_mode="scale",
    rfr_alpha=4.0,
    reference_tokens=64,
    decode_mode="aligned",
    canvas_long_side=4096,
)
_unique = itertools.count(1)


@pytest.fixture(scope="module")
def server(comfy_server: ComfyServer) -> ComfyServer:
    install_op4ksr_models(comfy_server)
    models = comfy_server.models
    save_file(
        load(tiny_flux_bfl_file()), str(models / "diffusion_models" / FT), metadata=to_metadata(TRAINED)
    )
    # A LoRA that changes nothing (B = 0) but carries the settings: what reaches the nodes is the metadata.
    name = "transformer.single_transformer_blocks.0.proj_out"
    lora = {f"{name}.lora_A.weight": torch.ones(1, 15360), f"{name}.lora_B.weight": torch.zeros(3072, 1)}
    save_file(lora, str(models / "loras" / LORA), metadata=to_metadata(TRAINED))
    save_file(
        load(f16_vae_file("bfl")),
        str(models / "vae" / VAE_PART),
        metadata=to_metadata(OP4KSRSettings(decode_mode="partitioned")),
    )
    return comfy_server


def _prompt(unet: str = "flux1-dev.safetensors", lora: str = "none", **upscale: object) -> dict:
    prompt = api_workflow("op4ksr_upscale_4k")  # the bundled workflow: every setting auto
    prompt["2"]["inputs"].update(unet_name=unet, lora_name=lora)
    # long_side 128 for speed; a unique (unused) scale so ComfyUI's cache never skips the node and its log line.
    prompt["3"]["inputs"].update(long_side=128, scale=1.0 + next(_unique) / 64, **upscale)
    return prompt


def _run(server: ComfyServer, prompt: dict) -> tuple[np.ndarray, str]:
    entry = server.run(prompt)
    text = "\n".join(entry["outputs"]["3"].get("text", []))
    return server.images(entry, "4")[0], text


@pytest.fixture(scope="module")
def base_run(server: ComfyServer) -> tuple[np.ndarray, str, str]:
    """Base FLUX with every widget auto (= the defaults 0.5 / direct / ntk): image, node text, its log lines."""
    start = len(server.log_path.read_text(errors="replace"))
    image, text = _run(server, _prompt())
    return image, text, server.log_path.read_text(errors="replace")[start:]


@pytest.fixture(scope="module")
def ft_run(server: ComfyServer) -> tuple[np.ndarray, str]:
    """The fine-tune with settings metadata, every widget auto."""
    return _run(server, _prompt(unet=FT))


def test_base_flux_runs_with_a_warning_on_the_node_and_in_the_log(
    base_run: tuple[np.ndarray, str, str],
) -> None:
    image, text, log = base_run
    assert image.shape == (96, 128, 3)
    assert text.startswith("Warning:") and "soft" in text and "flux_refine_4k" in text
    assert "docs/training_op4ksr.md" in text
    assert "carries no OP4KSR settings" in log and "flux_refine_4k" in log


def test_auto_widgets_take_the_fine_tunes_settings(
    server: ComfyServer, ft_run: tuple, base_run: tuple
) -> None:
    auto, text = ft_run
    assert "Warning" not in text and "t* 0.3, input flow" in text
    typed = _prompt(t_star=0.3, input_mode="flow")
    typed["2"]["inputs"].update(rfr_mode="scale", alpha=4.0, decode_mode="aligned")
    expected, warning = _run(server, typed)  # base weights (identical tensors) with the settings typed in
    np.testing.assert_array_equal(auto, expected)
    assert warning.startswith("Warning:")
    assert np.abs(auto.astype(int) - base_run[0].astype(int)).max() > 0  # the settings did change the result


def test_explicit_widgets_win_over_the_metadata(server: ComfyServer, base_run: tuple) -> None:
    prompt = _prompt(unet=FT, t_star=0.5, input_mode="direct")
    prompt["2"]["inputs"].update(rfr_mode="ntk")
    explicit, text = _run(server, prompt)
    np.testing.assert_array_equal(
        explicit, base_run[0]
    )  # base FLUX on auto = the defaults 0.5 / direct / ntk
    assert "t* 0.5, input direct" in text and "Warning" not in text


def test_lora_settings_travel_with_the_model_through_apply_rfr(server: ComfyServer, ft_run: tuple) -> None:
    via_lora, text = _run(server, _prompt(lora=LORA))
    assert "t* 0.3, input flow" in text
    via_ft = ft_run[0]
    assert np.abs(via_lora.astype(int) - via_ft.astype(int)).max() <= 1
    # Loader without RFR, then OP4KSR_ApplyRFR on auto: the MODEL's settings (scale x4) reach it.
    prompt = _prompt(unet=FT)
    prompt["2"]["inputs"]["rfr_mode"] = "none"
    prompt["5"] = {
        "class_type": "OP4KSR_ApplyRFR",
        "inputs": {"model": ["2", 0], "rfr_mode": "auto", "alpha": 1.0, "reference_tokens": 64},
    }
    prompt["3"]["inputs"]["model"] = ["5", 0]
    chained, _ = _run(server, prompt)
    np.testing.assert_array_equal(chained, via_ft)


def test_vae_decode_mode_auto(server: ComfyServer) -> None:
    prompt = api_workflow("op4ksr_exploded")
    for node in prompt.values():
        if node["class_type"] == "ImageScaleToMaxDimension":
            node["inputs"]["largest_size"] = 128

    def run(vae: str, mode: str) -> np.ndarray:
        prompt["4"]["inputs"].update(vae_name=vae, decode_mode=mode)
        return server.images(server.run(prompt), "14")[0]

    partitioned = run("ae.safetensors", "partitioned")
    assert (
        np.abs(run("ae.safetensors", "auto").astype(int) - partitioned.astype(int)).max() > 0
    )  # BFL -> aligned
    np.testing.assert_array_equal(run(VAE_PART, "auto"), partitioned)  # the file's metadata says partitioned
