"""GTASR to any size (x4 network passes, then an exact antialiased resize), alpha kept, and tile previews:
the pure parts, the CLI, and ``GTASR_Upscale`` in the real ComfyUI server with the small-config GTASR."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from comfy_harness import ComfyServer, PromptError, execution_error
from sr4k.cli.main import main
from sr4k.gtasr_core import GTASRNet, passes_for, upscale, upscale_to_size
from sr4k.srkit.sizing import resize_exact, target_size
from test_cli import files, lowres  # noqa: F401 - the tiny-GTASR fixture
from test_node_gtasr import SEAM_LR, models, net  # noqa: F401 - server with the tiny GTASR installed
from workflow_files import api_workflow


def test_passes_are_whole_x4_steps_up_to_x64() -> None:
    cases = {(25, 25): 1, (100, 100): 1, (400, 400): 1, (400, 401): 2, (1600, 1600): 2, (1601, 10): 3}
    for size, n in cases.items():
        assert passes_for(100, 100, size) == n, size
    with pytest.raises(ValueError, match=r"x81\.9, more than GTASR's 3 x4 passes \(x64\)"):
        passes_for(20, 28, (1638, 2293))


def test_resize_is_pillows_antialiased_bicubic() -> None:
    """The reference: Pillow's BICUBIC resize (always antialiased), per float channel."""
    x = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for size in [(11, 17), (30, 40), (37, 20)]:
        ref = np.stack([np.asarray(Image.fromarray(c.numpy().astype(np.float32), "F").resize(size[::-1],
                                                                                            Image.BICUBIC))
                        for c in x])  # fmt: skip
        got = resize_exact(x[None], size)[0].numpy()
        assert got.shape == ref.shape and np.abs(got - ref.clip(0, 1)).max() < 1e-6
    assert resize_exact(x[None], (37, 53)) is not None and torch.equal(resize_exact(x[None], (37, 53))[0], x)


def _core(net: GTASRNet, lr: torch.Tensor, size: tuple[int, int], seed: int, **kw: object) -> torch.Tensor:  # noqa: F811
    """The expected image: the core's passes and resize, written out step by step."""
    x = lr[:, :3]
    for _ in range(passes_for(*lr.shape[-2:], size)):
        x = upscale(net, x, seed=seed, **kw)
    out = resize_exact(x, size)
    return torch.cat([out, resize_exact(lr[:, 3:], size)], 1) if lr.shape[1] == 4 else out


def test_driver_runs_the_passes_and_resizes_rgb_and_alpha(files: tuple) -> None:  # noqa: F811
    tiny = files[2]
    lr = torch.rand(1, 4, 12, 10, generator=torch.Generator().manual_seed(1))
    calls: list[tuple[int, tuple]] = []

    def run_pass(x: torch.Tensor, k: int) -> torch.Tensor:
        calls.append((k, tuple(x.shape)))
        return upscale(tiny, x, seed=3)

    for size, n in [((48, 40), 1), ((30, 25), 1), ((100, 83), 2)]:
        calls.clear()
        out = upscale_to_size(lr, size, run_pass)
        assert out.shape == (1, 4, *size) and [k for k, _ in calls] == list(range(n))
        torch.testing.assert_close(out, _core(tiny, lr, size, 3), rtol=0, atol=1e-6)
    # Exactly x4: one pass and no resize, so the old x4 output is unchanged bit for bit.
    assert torch.equal(upscale_to_size(lr[:, :3], (48, 40), run_pass), upscale(tiny, lr[:, :3], seed=3))


def _tensor8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float().div(255).permute(2, 0, 1)[None]


@pytest.mark.parametrize(("flags", "size"), [(["--scale", "2.5"], (30, 40)), (["--long-side", "100"], (75, 100)),
                                             (["--scale", "16"], (192, 256))])  # fmt: skip
def test_cli_scale_and_long_side(files: tuple, tmp_path: Path, flags: list[str], size: tuple) -> None:  # noqa: F811
    pth, _, tiny = files
    a = lowres(4, 12, 16, channels=4)
    Image.fromarray(a).save(tmp_path / "in.png")
    assert main(["upscale", "--weights", str(pth), "--device", "cpu", "--seed", "2", *flags,
                 str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(float) / 255
    expected = _core(tiny, _tensor8(a), size, 2)[0].permute(1, 2, 0).numpy()
    assert out.shape == (*size, 4)
    assert np.abs(out - expected).max() <= 0.5 / 255 + 1e-6  # PNG rounding of the same float image


def test_cli_refuses_both_size_flags(files: tuple, tmp_path: Path) -> None:  # noqa: F811
    Image.fromarray(lowres(0)).save(tmp_path / "in.png")
    args = ["upscale", "--weights", str(files[0]), "--scale", "2", "--long-side", "64"]
    assert main([*args, str(tmp_path / "in.png"), str(tmp_path / "o.png")]) == 1


# --- GTASR_Upscale in the real server ------------------------------------------------------------------------

def _lr(server: ComfyServer, name: str = "sr4k_example_lowres.png", mode: str = "RGB") -> torch.Tensor:
    return _tensor8(np.asarray(Image.open(server.input_dir / name).convert(mode)))


def _prompt(**inputs: object) -> dict:
    prompt = api_workflow("gtasr_upscale")
    prompt["3"]["inputs"].update(inputs)
    return prompt


def _run(server: ComfyServer, prompt: dict) -> np.ndarray:
    return server.images(server.run(prompt), "4")[0].astype(np.float64) / 255


@pytest.mark.comfy
@pytest.mark.parametrize("inputs", [{"target": "scale", "scale": 2.5}, {"target": "long_side", "long_side": 100},
                                    {"target": "scale", "scale": 16.0}])  # fmt: skip
def test_node_sizes_equal_the_core(models: ComfyServer, net: GTASRNet, inputs: dict) -> None:  # noqa: F811
    lr = _lr(models)
    h, w = lr.shape[-2:]
    size = target_size(h, w, long_side=inputs["long_side"]) if "long_side" in inputs else \
        target_size(h, w, scale=inputs["scale"])
    out = _run(models, _prompt(**inputs))
    assert out.shape == (*size, 3)
    expected = _core(net, lr, size, 0)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - expected).max() <= 1 / 255 + 1e-6  # SaveImage truncates to 8 bits


@pytest.mark.comfy
def test_old_workflows_without_the_new_inputs_still_run_x4(models: ComfyServer) -> None:  # noqa: F811
    old = _prompt()
    for name in ("target", "scale", "long_side"):
        del old["3"]["inputs"][name]
    lr = _lr(models)
    out = _run(models, old)
    assert out.shape == (4 * lr.shape[-2], 4 * lr.shape[-1], 3)
    assert np.array_equal(out, _run(models, _prompt()))


@pytest.mark.comfy
def test_rgba_keeps_alpha_at_any_size(models: ComfyServer, net: GTASRNet) -> None:  # noqa: F811
    prompt = _prompt(scale=2.5)
    prompt["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}
    prompt["6"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["5", 0]}}
    prompt["3"]["inputs"]["image"] = ["6", 0]
    out = _run(models, prompt)
    lr = _lr(models)
    rgba = torch.cat([lr, 1 - lr[:, :1]], 1)  # JoinImageWithAlpha stores 1 - mask
    expected = _core(net, rgba, (50, 70), 0)[0].permute(1, 2, 0).numpy()
    assert out.shape == (50, 70, 4) and np.abs(out - expected).max() <= 1 / 255 + 1e-6


@pytest.mark.comfy
def test_too_large_a_target_is_a_clear_error(models: ComfyServer) -> None:  # noqa: F811
    with pytest.raises(PromptError) as err:
        models.run(_prompt(target="long_side", long_side=16384))
    msg = execution_error(err.value.payload)
    assert msg["node_type"] == "GTASR_Upscale" and "more than GTASR's 3 x4 passes" in msg["exception_message"]


async def _run_collecting_previews(server: ComfyServer, prompt: dict) -> tuple[list[Image.Image], str]:
    """Run ``prompt`` as a websocket client would; returns the preview images sent, and the final status."""
    import aiohttp

    client = str(uuid.uuid4())
    previews: list[Image.Image] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
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
                if data["type"] in ("execution_success", "execution_error") and \
                        data["data"].get("prompt_id") == prompt_id:
                    return previews, data["type"]
            else:
                raise AssertionError(f"websocket closed: {msg}")


@pytest.mark.comfy
def test_tiled_runs_preview_the_finished_tiles(models: ComfyServer) -> None:  # noqa: F811
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


def test_preview_canvas_ends_as_the_output(files: tuple) -> None:  # noqa: F811
    """Without ComfyUI's JPEG step: the canvas after the last tile is exactly the (blended) output."""
    from sr4k.nodes.gtasr_preview import TilePreview

    tiny, lr = files[2], _tensor8(lowres(3, 24, 40))
    preview, shots = TilePreview(side=512), []

    def paste(i: int, rect: tuple, tile: torch.Tensor) -> None:
        preview.paste(i, rect, tile)
        shots.append(preview.canvas.clone())

    preview.start(lr, tiny.scale)
    out = upscale(tiny, lr, seed=1, tile=16, overlap=8, on_tile=paste)
    assert len(shots) == 2 * 4  # 2 x 4 tiles of 16 with overlap 8 over 24 x 40
    torch.testing.assert_close(shots[-1], out, rtol=0, atol=1e-6)
    assert (shots[0] - out).abs().mean() > 10 * (shots[-1] - out).abs().mean() + 1e-3
    kind, image, side = preview.take()
    assert (kind, side, image.size) == ("JPEG", 512, (160, 96))
    assert preview.take() is None  # one preview per pasted tile
