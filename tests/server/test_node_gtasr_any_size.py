"""``GTASR_Upscale`` to any size in the real ComfyUI server (small-config GTASR): sizes equal the core, saved
workflows without the new inputs still run x4, RGBA keeps alpha, too-large targets are clear errors, and
tiled runs send the finished tiles as progress previews over the websocket."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from comfy_harness import ComfyServer, PromptError, execution_error
from gtasr_node_fixtures import SEAM_LR, models, net  # noqa: F401 - server with the tiny GTASR installed
from gtasr_support import SAVED_8BIT_ATOL, any_size_reference
from sr4k.gtasr_core import GTASRNet
from sr4k.srkit.sizing import target_size
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


def _tensor8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy()).float().div(255).permute(2, 0, 1)[None]


def _lr(server: ComfyServer, name: str = "sr4k_example_lowres.png", mode: str = "RGB") -> torch.Tensor:
    return _tensor8(np.asarray(Image.open(server.input_dir / name).convert(mode)))


def _prompt(**inputs: object) -> dict:
    prompt = api_workflow("gtasr_upscale")
    prompt["3"]["inputs"].update(inputs)
    return prompt


def _run(server: ComfyServer, prompt: dict) -> np.ndarray:
    return server.images(server.run(prompt), "4")[0].astype(np.float64) / 255


@pytest.mark.parametrize(
    "inputs",
    [
        {"target": "scale", "scale": 2.5},
        {"target": "long_side", "long_side": 100},
        {"target": "scale", "scale": 16.0},
    ],
)
def test_node_sizes_equal_theany_size_reference(models: ComfyServer, net: GTASRNet, inputs: dict) -> None:
    lr = _lr(models)
    h, w = lr.shape[-2:]
    size = (
        target_size(h, w, long_side=inputs["long_side"])
        if "long_side" in inputs
        else target_size(h, w, scale=inputs["scale"])
    )
    out = _run(models, _prompt(**inputs))
    assert out.shape == (*size, 3)
    expected = any_size_reference(net, lr, size, 0)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - expected).max() <= SAVED_8BIT_ATOL


def test_old_workflows_without_the_new_inputs_still_run_x4(models: ComfyServer) -> None:
    old = _prompt()
    for name in ("target", "scale", "long_side"):
        del old["3"]["inputs"][name]
    lr = _lr(models)
    out = _run(models, old)
    assert out.shape == (4 * lr.shape[-2], 4 * lr.shape[-1], 3)
    assert np.array_equal(out, _run(models, _prompt()))


def test_rgba_keeps_alpha_at_any_size(models: ComfyServer, net: GTASRNet) -> None:
    prompt = _prompt(scale=2.5)
    prompt["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}
    prompt["6"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["5", 0]}}
    prompt["3"]["inputs"]["image"] = ["6", 0]
    out = _run(models, prompt)
    lr = _lr(models)
    rgba = torch.cat([lr, 1 - lr[:, :1]], 1)  # JoinImageWithAlpha stores 1 - mask
    expected = any_size_reference(net, rgba, (50, 70), 0)[0].permute(1, 2, 0).numpy()
    assert out.shape == (50, 70, 4) and np.abs(out - expected).max() <= SAVED_8BIT_ATOL


def test_too_large_a_target_is_a_clear_error(models: ComfyServer) -> None:
    with pytest.raises(PromptError) as err:
        models.run(_prompt(target="long_side", long_side=16384))
    msg = execution_error(err.value.payload)
    assert msg["node_type"] == "GTASR_Upscale" and "more than GTASR's 3 x4 passes" in msg["exception_message"]


async def _run_collecting_previews(server: ComfyServer, prompt: dict) -> tuple[list[Image.Image], str]:
    """Run ``prompt`` as a websocket client would; returns the preview images sent, and the final status."""
    import aiohttp

    client = str(uuid.uuid4())
    previews: list[Image.Image] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.url}/ws?clientId={client}") as ws,
    ):
        async with session.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client}) as r:
            prompt_id = (await r.json())["prompt_id"]
        while True:
            msg = await ws.receive(timeout=300)
            if msg.type == aiohttp.WSMsgType.BINARY:
                # server.py send_image: event 1 (PREVIEW_IMAGE), image type 1 (JPEG), then the JPEG.
                event, kind = int.from_bytes(msg.data[:4], "big"), int.from_bytes(msg.data[4:8], "big")
                assert (event, kind) == (1, 1)
                previews.append(Image.open(io.BytesIO(msg.data[8:])).convert("RGB"))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if (
                    data["type"] in ("execution_success", "execution_error")
                    and data["data"].get("prompt_id") == prompt_id
                ):
                    return previews, data["type"]
            else:
                raise AssertionError(f"websocket closed: {msg}")


def test_tiled_runs_preview_the_finished_tiles(models: ComfyServer) -> None:
    prompt = _prompt(tiling="force", tile_size=64, overlap=16, seed=5)
    prompt["1"]["inputs"]["image"] = "sr4k_gtasr_seam.png"  # 96 x 96: 2 x 2 tiles of 64
    previews, status = asyncio.run(_run_collecting_previews(models, prompt))
    assert status == "execution_success"
    assert len(previews) == 4, len(previews)  # one per finished tile
    final = Image.fromarray((_run(models, prompt) * 255).round().astype(np.uint8))
    assert final.size == (4 * SEAM_LR, 4 * SEAM_LR)
    # ComfyUI fits previews into --preview-size (512 px; server.py send_image: ImageOps.contain, bilinear).
    assert all(p.size == (512, 512) for p in previews), [p.size for p in previews]
    ref = np.asarray(ImageOps.contain(final, (512, 512), Image.Resampling.BILINEAR), dtype=float)
    shots = [np.asarray(p, dtype=float) for p in previews]
    errors = [float(np.abs(s - ref).mean()) for s in shots]
    # The last preview is the result, up to what JPEG quality 95 costs on it (the tiny net's output is noisy).
    buf = io.BytesIO()
    Image.fromarray(ref.astype(np.uint8)).save(buf, format="JPEG", quality=95)
    jpeg_cost = float(np.abs(np.asarray(Image.open(buf), dtype=float) - ref).mean())
    assert errors[-1] < 1.1 * jpeg_cost + 0.2, (errors, jpeg_cost)
    assert errors == sorted(errors, reverse=True), errors  # each tile brings it closer
    # The first shows tile 1 (LR [0, 64)^2 -> preview [0, 341)^2) and the far corner (LR [64, 96)^2) still the
    # bicubic start; regions a later tile overlaps change again, so compare away from them.
    done, corner = (slice(0, 160), slice(0, 160)), (slice(360, None), slice(360, None))
    assert np.abs(shots[0][done] - ref[done]).mean() < 1.1 * jpeg_cost + 0.2
    assert np.abs(shots[0][corner] - ref[corner]).mean() > 4 * np.abs(shots[-1][corner] - ref[corner]).mean()
    # A patch-free run sends no preview.
    previews, _ = asyncio.run(_run_collecting_previews(models, _prompt(tiling="off", seed=6)))
    assert previews == []
