"""GTASR nodes in the real ComfyUI server, with a small-config GTASR in the released checkpoint format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from comfy_harness import ComfyServer, PromptError, execution_error
from gtasr_node_fixtures import SEAM_LR, gtasr_patcher, models, net, nodes  # noqa: F401 - fixtures
from gtasr_support import SAVED_8BIT_ATOL, border_ratio
from memory_budget import memory_budget
from sr4k.gtasr_core import GTASRNet, TileRect, plan_tiles, upscale
from sr4k.gtasr_core.memory import upscale_memory
from sr4k.srkit.seam import seam_score
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


def _lr(server: ComfyServer, name: str) -> torch.Tensor:
    a = np.array(Image.open(server.input_dir / name).convert("RGB"))
    return torch.from_numpy(a).float().div(255).permute(2, 0, 1)[None]


def _inner_edges(rects: list[TileRect], scale: int) -> list[int]:
    """HR columns where a tile of a square plan starts or ends inside the image."""
    side = max(r.x + r.w for r in rects)
    return sorted(
        {r.x * scale for r in rects if r.x > 0} | {(r.x + r.w) * scale for r in rects if r.x + r.w < side}
    )


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _run(server: ComfyServer, prompt: dict) -> np.ndarray:
    return server.images(server.run(prompt), "4")[0]


def _prompt(**upscale_inputs: object) -> dict:
    prompt = api_workflow("gtasr_upscale")
    prompt["3"]["inputs"].update(upscale_inputs)
    return prompt


def test_bundled_workflow_equals_the_core(models: ComfyServer, net: GTASRNet) -> None:
    out = _run(models, _prompt())
    lr = _lr(models, "sr4k_example_lowres.png")
    assert out.shape == (4 * lr.shape[-2], 4 * lr.shape[-1], 3)
    expected = _hwc(upscale(net, lr, seed=0))
    np.testing.assert_allclose(out / 255.0, expected, atol=1.0 / 255 + 1e-6)  # SaveImage truncates to 8 bits
    assert out.std() > 5.0
    # Same seed: same image (up to CPU float rounding across model reloads); another seed: another image.
    again = _run(models, _prompt())
    assert np.abs(again.astype(int) - out).max() <= 1 and (again != out).mean() < 1e-3
    other = _run(models, _prompt(seed=1))
    assert np.abs(other.astype(int) - out).mean() > 2.0


def test_safetensors_and_download_entry_load_the_same_network(models: ComfyServer) -> None:
    reference = _run(models, _prompt())
    prompt = _prompt()
    prompt["2"]["inputs"]["model_name"] = "tiny_gtasr.safetensors"
    assert np.abs(_run(models, prompt).astype(int) - reference).max() <= 1
    # The download entry with the released file already in the first gtasr folder: no network (the test
    # server runs with HF_HUB_OFFLINE=1, so a download attempt would fail).
    prompt["2"]["inputs"].update(model_name="GTASR_final_phase.pth (download)", download_released=True)
    assert np.abs(_run(models, prompt).astype(int) - reference).max() <= 1


def test_forced_tiles_have_no_seam(models: ComfyServer, net: GTASRNet) -> None:
    prompt = _prompt(tiling="off")
    prompt["1"]["inputs"]["image"] = "sr4k_gtasr_seam.png"
    whole = _run(models, prompt).astype(np.float32) / 255
    prompt["3"]["inputs"].update(tiling="force", tile_size=64, overlap=16)
    tiled = _run(models, prompt).astype(np.float32) / 255
    assert tiled.shape == whole.shape == (4 * SEAM_LR, 4 * SEAM_LR, 3)
    lr = _lr(models, "sr4k_gtasr_seam.png")
    np.testing.assert_allclose(
        tiled, _hwc(upscale(net, lr, seed=0, tile=64, overlap=16)), atol=SAVED_8BIT_ATOL
    )
    # The node's layout: tiles [0, 56) and [40, 96) in LR px, whose inner edges are HR columns/rows 160 and 224.
    rects = plan_tiles(SEAM_LR, SEAM_LR, 64, 16, net.lr_multiple)
    edges = _inner_edges(rects, net.scale)
    assert edges == [160, 224]
    t, w = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (tiled, whole))
    # Those lines also fall on the network's own Swin-window grid, so the patch-free image is the baseline.
    # Measured: 1.088 patch-free, 1.097 feathered tiles; seam score 1.284 tiles, 1.262 patch-free.
    base = border_ratio(w, edges, edges)
    assert border_ratio(t, edges, edges) < base + 0.02
    stride = net.scale * (rects[1].x - rects[0].x)
    assert float(seam_score(t, tile=stride)[0]) < float(seam_score(w, tile=stride)[0]) + 0.05
    # The control, showing the measure sees a tiling seam: the released layout's tiles [0, 64) and [32, 96)
    # flat-averaged (overlap 0: no ramps), whose edges 128 and 256 step (measured 1.158 against 1.101 patch-free).
    flat_edges = _inner_edges(plan_tiles(SEAM_LR, SEAM_LR, 64, 0, net.lr_multiple, "released"), net.scale)
    assert flat_edges == [128, 256]
    flat = torch.floor(upscale(net, lr, seed=0, tile=64, overlap=0, tile_plan="released") * 255) / 255
    assert border_ratio(flat, flat_edges, flat_edges) > border_ratio(w, flat_edges, flat_edges) + 0.04
    # Same noise field everywhere: tiles change the image little (measured 0.015; another seed: 0.11).
    assert np.abs(tiled - whole).mean() < 0.03


def test_rgba_keeps_a_bicubic_alpha(models: ComfyServer, net: GTASRNet) -> None:
    prompt = _prompt()
    # Alpha from the image's red channel (core nodes), joined back as an RGBA IMAGE.
    prompt["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}
    prompt["6"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["5", 0]}}
    prompt["3"]["inputs"]["image"] = ["6", 0]
    out = _run(models, prompt)
    lr = _lr(models, "sr4k_example_lowres.png")
    assert out.shape == (4 * lr.shape[-2], 4 * lr.shape[-1], 4)
    alpha = F.interpolate(1 - lr[:, :1], scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    np.testing.assert_allclose(out[..., 3] / 255.0, alpha[0, 0].numpy(), atol=1.0 / 255 + 1e-6)
    np.testing.assert_allclose(out[..., :3] / 255.0, _hwc(upscale(net, lr, seed=0)), atol=1.0 / 255 + 1e-6)


def _expect_error(server: ComfyServer, prompt: dict, node_type: str, *fragments: str) -> None:
    with pytest.raises(PromptError) as err:
        server.run(prompt)
    msg = execution_error(err.value.payload)
    assert msg.get("node_type") == node_type, msg
    for fragment in fragments:
        assert fragment in msg["exception_message"], msg["exception_message"]
    assert _run(server, _prompt()).shape[-1] == 3  # and the server serves the next prompt


@pytest.mark.parametrize(
    ("model_name", "fragments"),
    [
        ("flux1-dev.safetensors", ("is not a GTASR network", "FLUX transformer", "GTASR_final_phase.pth")),
        ("truncated.pth", ("truncated or corrupt", "Re-download")),
        (
            "wrong_keys.safetensors",
            (
                "does not fit the inferred GTASR network",
                "1 missing keys",
                "model.dec.16x16_block0.norm1.bias",
                "1 unexpected keys",
                "model.extra.weight",
            ),
        ),
        (
            "GTASR_final_phase.pth (download)",
            (
                "download_released is off",
                "https://huggingface.co/Blaze-UESTC/GTASR/resolve/main/GTASR_final_phase.pth",
            ),
        ),
    ],
)
def test_bad_model_files_are_clear_errors(models: ComfyServer, model_name: str, fragments: tuple) -> None:
    prompt = _prompt()
    prompt["2"]["inputs"]["model_name"] = model_name
    _expect_error(models, prompt, "GTASR_LoadModel", *fragments)


def test_one_channel_image_is_a_clear_error(models: ComfyServer) -> None:
    prompt = _prompt()
    prompt["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "red"}}
    prompt["6"] = {"class_type": "SR4KTest_MaskAsImage", "inputs": {"mask": ["5", 0]}}
    prompt["3"]["inputs"]["image"] = ["6", 0]
    _expect_error(models, prompt, "GTASR_Upscale", "1 channel(s)", "RGB")


def test_empty_batch_is_a_clear_error(models: ComfyServer) -> None:
    prompt = _prompt()
    prompt["5"] = {"class_type": "SR4KTest_EmptyImageBatch", "inputs": {"image": ["1", 0]}}
    prompt["3"]["inputs"]["image"] = ["5", 0]
    _expect_error(models, prompt, "GTASR_Upscale", "empty batch")


def test_tile_that_is_not_a_multiple_is_a_clear_error(models: ComfyServer) -> None:
    prompt = _prompt(tiling="force", tile_size=100)
    _expect_error(models, prompt, "GTASR_Upscale", "tile=100 must be a positive multiple of 8")


# --- the node classes in this process (ComfyUI tree imported in CPU mode): control flow that a real
# --- server cannot provoke on demand (out of memory, cancel) ---------------------------------------


def test_loader_precision_andgtasr_patcher(nodes) -> None:
    import comfy.model_management as mm

    assert nodes.model_options()[-1] == "GTASR_final_phase.pth (download)"
    assert "tiny_gtasr.pth" in nodes.model_options()
    patcher = gtasr_patcher(nodes, "auto")
    assert patcher.load_device == mm.get_torch_device() and patcher.offload_device == mm.unet_offload_device()
    assert next(patcher.model.parameters()).dtype == torch.float32  # auto on CPU
    bf16 = gtasr_patcher(nodes, "bf16")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    full = nodes.Upscale.execute(patcher, image, 0, "off", 64, 16).result[0]
    half = nodes.Upscale.execute(bf16, image, 0, "off", 64, 16).result[0]
    assert full.shape == half.shape == (1, 64, 64, 3) and full.dtype == half.dtype == torch.float32
    assert (full - half).abs().mean() < 0.02  # bf16 weights, same image


# LR images wider than the 16-px tiles, so tiled and patch-free outputs differ and show which ran. One pass of
# a 16 x 32 image needs a 1 MiB head (the tiny GTASR: 2 kiB per LR pixel), a 16-px tile 512 kiB.
LR_HW, TILE, OVERLAP, SEED = (16, 32), 16, 4, 5
BUDGET = 600 << 10


def _batch() -> torch.Tensor:
    """Two different LR images as ComfyUI passes them, [2, H, W, 3]."""
    return torch.rand(2, *LR_HW, 3, generator=torch.Generator().manual_seed(7))


def _core(net: GTASRNet, image: torch.Tensor, seed: int = SEED, **kw: object) -> list[torch.Tensor]:
    """``gtasr_core.upscale`` of each image of a ComfyUI batch on its own, each [1, 4H, 4W, 3]."""
    return [upscale(net, x[None].permute(0, 3, 1, 2), seed=seed, **kw).permute(0, 2, 3, 1) for x in image]


@pytest.mark.parametrize(
    ("tiling", "free", "runs"),
    [
        ("off", "plenty", "whole"),
        ("off", "little", "whole"),  # off never tiles, whatever ComfyUI reports free
        ("auto", "plenty", "whole"),
        ("auto", "little", "tiles"),
        ("force", "plenty", "tiles"),
    ],
)
def test_tiling_modes_give_the_cores_output(
    nodes, monkeypatch: pytest.MonkeyPatch, tiling: str, free: str, runs: str
) -> None:
    """Each image of the batch is the core's upscale of that image with the node's seed, patch-free or in
    tile_size tiles with the node's overlap as the tiling mode and ComfyUI's free memory decide."""
    import comfy.model_management as mm

    patcher = gtasr_patcher(nodes)
    net = patcher.model
    if free == "little":  # the environment, not the code under test: a card with less free than one pass
        monkeypatch.setattr(mm, "get_free_memory", lambda *a, **k: upscale_memory(net, *LR_HW) // 2)
    image = _batch()
    out = nodes.Upscale.execute(patcher, image, SEED, tiling, TILE, OVERLAP).result[0]
    assert out.shape == (2, 4 * LR_HW[0], 4 * LR_HW[1], 3) and out.is_contiguous()  # IMAGE: contiguous BHWC
    whole, tiles = _core(net, image), _core(net, image, tile=TILE, overlap=OVERLAP)
    for i, expected in enumerate(whole if runs == "whole" else tiles):
        torch.testing.assert_close(out[i : i + 1], expected, rtol=0, atol=1e-6)
        assert (whole[i] - tiles[i]).abs().max() > 0.02  # the two references tell the modes apart
    # The seed reaches the core: another seed is another image (margin far above the tolerance above).
    assert (out[:1] - _core(net, image[:1], seed=SEED + 1)[0]).abs().mean() > 0.02


def test_noise_option_reaches_the_core(nodes) -> None:
    """``noise`` picks the core's stream: counter when the input is missing (workflows saved before it existed
    and API prompts without it) or set, the earlier CPU stream when torch; the two give different images."""
    patcher = gtasr_patcher(nodes)
    net, image = patcher.model, _batch()[:1]
    missing = nodes.Upscale.execute(patcher, image, SEED, "off", TILE, OVERLAP).result[0]
    by_kind = {
        kind: nodes.Upscale.execute(patcher, image, SEED, "off", TILE, OVERLAP, noise=kind).result[0]
        for kind in ("counter", "torch")
    }
    for kind, out in by_kind.items():
        torch.testing.assert_close(out, _core(net, image, noise=kind)[0], rtol=0, atol=1e-6)
        assert out.is_contiguous()  # one image: the core's NHWC result itself, a contiguous BHWC IMAGE
    assert torch.equal(missing, by_kind["counter"])
    assert (by_kind["counter"] - by_kind["torch"]).abs().mean() > 0.02  # another noise field, another image
    with pytest.raises(ValueError, match="noise='gpu': choose one of counter, torch"):
        nodes.Upscale.execute(patcher, image, SEED, "off", TILE, OVERLAP, noise="gpu")


def test_overlap_not_below_tile_size_is_a_clear_error_before_any_work(nodes) -> None:
    """auto tiles only when the image does not fit, so the check cannot wait for that: a workflow that runs on
    small images must not fail on large ones."""
    patcher = gtasr_patcher(nodes)
    image = _batch()[:1]
    for tiling in ("auto", "force"):
        with pytest.raises(ValueError, match="overlap 16 must be smaller than tile_size 16: lower overlap"):
            nodes.Upscale.execute(patcher, image, SEED, tiling, TILE, TILE)
    nodes.Upscale.execute(patcher, image, SEED, "off", TILE, TILE)  # off never tiles


def test_values_outside_0_1_are_clamped_with_a_warning(nodes, caplog: pytest.LogCaptureFixture) -> None:
    """An HDR loader's IMAGE may overshoot [0, 1]: the node runs on the clamped image (input untouched)."""
    patcher = gtasr_patcher(nodes)
    image = _batch()[:1] * 2 - 0.5  # [-0.5, 1.5]
    before = image.clone()
    with caplog.at_level("WARNING"):
        out = nodes.Upscale.execute(patcher, image, SEED, "off", TILE, OVERLAP).result[0]
    assert torch.equal(image, before)
    torch.testing.assert_close(out, _core(patcher.model, image.clamp(0, 1))[0], rtol=0, atol=1e-6)
    assert "outside [0, 1]; clamped" in caplog.text


def test_auto_falls_back_to_tile_size_tiles_and_off_does_not(nodes) -> None:
    """Under a real allocation budget the whole image does not fit: auto retries in tile_size tiles (overlap
    capped at tile // 8, as the core documents), off reports the out-of-memory error."""
    patcher = gtasr_patcher(nodes)
    image = _batch()[:1]  # one image: the budget's per-op check is slow, and the batch is covered above
    with memory_budget(BUDGET) as log:
        out = nodes.Upscale.execute(patcher, image, SEED, "auto", TILE, OVERLAP).result[0]
    assert log.refused  # the patch-free attempt was refused
    expected = _core(patcher.model, image, tile=TILE, overlap=TILE // 8)
    torch.testing.assert_close(out, expected[0], rtol=0, atol=1e-6)
    assert (
        out - _core(patcher.model, image, tile=TILE, overlap=OVERLAP)[0]
    ).abs().max() > 0.02  # not overlap 4
    with memory_budget(BUDGET), pytest.raises(RuntimeError, match=r"in one pass \(tiling=off\)"):
        nodes.Upscale.execute(patcher, image, SEED, "off", TILE, OVERLAP)


def test_cancel_propagates_and_frees_memory(nodes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancel between tiles stops the run, even when no progress update reaches ComfyUI's hook (newer
    ComfyUI throttles them, and its cancel check rides on them): the node checks explicitly."""
    import comfy.model_management as mm
    import comfy.utils

    emptied: list[int] = []
    monkeypatch.setattr(mm, "soft_empty_cache", lambda *a, **k: emptied.append(1))
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    patcher = gtasr_patcher(nodes)
    tiles: list[int] = []

    def press_cancel(module: torch.nn.Module, args: object, out: object) -> None:
        tiles.append(1)
        mm.interrupt_current_processing(True)  # the user presses Cancel during the first tile

    handle = patcher.model.register_forward_hook(press_cancel)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            nodes.Upscale.execute(patcher, torch.rand(1, 24, 24, 3), 0, "force", 8, 0)
    finally:
        handle.remove()
        mm.interrupt_current_processing(False)
    assert len(tiles) == 1  # 3 x 3 tiles planned, stopped after the first
    assert emptied


def test_memory_estimate_counts_padded_pixels_and_dtype(nodes) -> None:
    from sr4k.gtasr_core.memory import HEAD_MAPS, upscale_memory

    fp32, bf16 = gtasr_patcher(nodes).model, gtasr_patcher(nodes, "bf16").model
    # 20 x 28 LR pads to 24 x 32 (multiple 8); per LR pixel: HEAD_MAPS 32-channel maps + 4 fp32 RGB, at 16 HR px.
    assert upscale_memory(fp32, 20, 28, slabbed_head=False) == 24 * 32 * 16 * (HEAD_MAPS * 32 * 4 + 4 * 3 * 4)
    assert upscale_memory(bf16, 20, 28, slabbed_head=False) == 24 * 32 * 16 * (HEAD_MAPS * 32 * 2 + 4 * 3 * 4)
