"""Training crops placed in the 4K canvas: the trainer feeds FLUX exactly the rotary embedding of the matching
rows and columns of a 4096² inference call, in the diffusers (headless/training) and ComfyUI paths (issue #10 A)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_tree import import_comfy
from sr4k.op4ksr_core.embedder import RFREmbedder
from sr4k.op4ksr_core.flux.forward import set_rfr, velocity
from sr4k.op4ksr_core.onestep import OneStepConfig
from sr4k.op4ksr_core.rfr import RFRConfig, ntk_theta
from sr4k.srkit.degradations import PRESETS
from sr4k.training.op4ksr.canvas import CanvasSpec, canvas_grid, place_crop
from sr4k.training.op4ksr.data import DegradedCrops, PairedCrops
from sr4k.training.op4ksr.step import OneStepSR
from tiny_models import deterministic_state_dict

AXES = (16, 56, 56)
CANVAS, CROP, UNIT = 4096, 1024, 32  # 128 x 128 canvas tokens, 32 x 32 crop tokens
ORIGIN = (37, 90)  # token origin (y0, x0) of the crop: rows 37..68, columns 90..121


class Captured(Exception):
    """Raised by the hook once the embedding is recorded: no attention is computed."""


def flux_with_real_rope() -> torch.nn.Module:
    """A diffusers FLUX with FLUX.1's RoPE split (16, 56, 56) and one 128-dim head: the rotary maths of the real model."""
    from diffusers import FluxTransformer2DModel

    cfg = dict(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=128,
        num_attention_heads=1,
        joint_attention_dim=16,
        pooled_projection_dim=8,
        guidance_embeds=True,
        axes_dims_rope=AXES,
    )
    with torch.device("meta"):
        model = FluxTransformer2DModel(**cfg)
    model.load_state_dict(
        deterministic_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}), assign=True
    )
    return set_rfr(model.eval(), RFRConfig(mode="ntk"))


def fed_embedding(transformer: torch.nn.Module, call) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) the transformer's forward computes from its ids, image tokens only ([L_img, 128] each)."""
    seen = {}

    def hook(_module, _args, out):
        seen["out"] = out
        raise Captured

    handle = transformer.pos_embed.register_forward_hook(hook)
    try:
        with pytest.raises(Captured), torch.no_grad():
            call()
    finally:
        handle.remove()
    cos, sin = seen["out"]
    text = OneStepConfig().empty_text_tokens
    return cos[text:], sin[text:]


def trainer_embedding(origin: tuple[int, int], canvas_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    transformer = flux_with_real_rope()
    model = OneStepSR(transformer, OneStepConfig())
    z = torch.zeros(1, 16, 2 * CROP // UNIT, 2 * CROP // UNIT)  # F16 latent of the 1024-px crop
    placement = torch.tensor([[*origin, canvas_tokens, canvas_tokens]])
    return fed_embedding(transformer, lambda: model(z, placement))


def inference_embedding() -> tuple[torch.Tensor, torch.Tensor]:
    """What a 4096² headless inference call feeds: latent 256 x 256, 128 x 128 tokens, ids 0..127."""
    transformer = flux_with_real_rope()
    z = torch.zeros(1, 16, 2 * CANVAS // UNIT, 2 * CANVAS // UNIT)
    return fed_embedding(transformer, lambda: velocity(transformer, z, 0.5, OneStepConfig()))


def window(table: torch.Tensor, origin: tuple[int, int], side: int = CANVAS // UNIT) -> torch.Tensor:
    n = CROP // UNIT
    return table.reshape(side, side, -1)[origin[0] : origin[0] + n, origin[1] : origin[1] + n].reshape(
        n * n, -1
    )


@pytest.fixture(scope="module")
def full() -> tuple[torch.Tensor, torch.Tensor]:
    return inference_embedding()


def test_trainer_rope_equals_the_4k_inference_window_in_diffusers(
    full: tuple[torch.Tensor, torch.Tensor],
) -> None:
    cos, sin = trainer_embedding(ORIGIN, CANVAS // UNIT)
    assert cos.shape == (32 * 32, 128)
    assert torch.equal(cos, window(full[0], ORIGIN)) and torch.equal(sin, window(full[1], ORIGIN))
    # Without the canvas (crop = canvas: ids 0..31, stock theta) the crop sees something else entirely.
    alone_cos, _ = trainer_embedding((0, 0), CROP // UNIT)
    assert (alone_cos - window(full[0], ORIGIN)).abs().max() > 0.5


def test_canvas_theta_is_the_4k_ntk_base() -> None:
    embed = flux_with_real_rope().pos_embed
    embed.grid_hw = (128.0, 128.0)
    thetas = embed._thetas_for_ids(torch.zeros(4, 3))
    assert (
        thetas[1] == thetas[2] == pytest.approx(ntk_theta(10_000, 56, 2.0)) == pytest.approx(20_520, rel=1e-3)
    )


@pytest.mark.comfy
def test_trainer_rope_equals_the_4k_window_of_comfyui(full: tuple[torch.Tensor, torch.Tensor]) -> None:
    """ComfyUI builds the ids (its own Flux.process_img) and runs the embedder OP4KSR_ApplyRFR installs."""
    import_comfy()
    from comfy.ldm.flux.layers import EmbedND
    from comfy.ldm.flux.model import Flux

    host = SimpleNamespace(patch_size=2, params=SimpleNamespace(axes_dim=list(AXES)))
    _, img_ids = Flux.process_img(host, torch.zeros(1, 16, 2 * CANVAS // UNIT, 2 * CANVAS // UNIT))
    ids = torch.cat([torch.zeros(1, 1, 3), img_ids], dim=1)  # forward_orig: cat(txt_ids, img_ids)
    comfy_embedder = RFREmbedder.from_module(
        EmbedND(dim=128, theta=10_000, axes_dim=list(AXES)), RFRConfig(mode="ntk")
    )
    pe = comfy_embedder(ids)[0, 0, 1:]  # [L_img, 64, 2, 2]
    cos, sin = trainer_embedding(ORIGIN, CANVAS // UNIT)
    comfy_cos, comfy_sin = window(pe[..., 0, 0], ORIGIN), window(pe[..., 1, 0], ORIGIN)
    # Same angles; ComfyUI builds the exponents with linspace (1 float64 ulp apart), so equal to float32 rounding.
    torch.testing.assert_close(cos[:, 0::2], comfy_cos, rtol=0, atol=1e-6)
    torch.testing.assert_close(sin[:, 0::2], comfy_sin, rtol=0, atol=1e-6)
    trainer_embed = flux_with_real_rope().pos_embed
    trainer_embed.grid_hw = (128.0, 128.0)
    assert comfy_embedder._thetas_for_ids(ids) == trainer_embed._thetas_for_ids(ids)
    assert (comfy_cos - window(full[0][:, 0::2], (0, 0))).abs().max() > 0.5  # the window, not any window


def test_placements() -> None:
    spec = CanvasSpec(CANVAS, UNIT)
    g = torch.Generator().manual_seed(0)
    # A 4K frame: the crop's true origin; canvas = the frame (2160 rows pad to 68 tokens, as inference pads).
    assert place_crop(2160, 4096, 320, 640, CROP, spec, g).tolist() == [10, 20, 68, 128]
    with pytest.raises(ValueError, match="token grid"):
        place_crop(2160, 4096, 321, 640, CROP, spec, g)
    # Any other image: a random origin in the square canvas, every position where the crop fits.
    origins = {tuple(place_crop(1500, 2000, 0, 0, CROP, spec, g)[:2].tolist()) for _ in range(400)}
    assert all(0 <= y <= 96 and 0 <= x <= 96 for y, x in origins) and len(origins) > 350
    assert canvas_grid(1500, 2000, spec) == (128, 128)
    # canvas = crop: origin 0 and the crop's own grid (full-frame training / the unplaced behaviour).
    assert place_crop(1500, 2000, 7, 9, CROP, CanvasSpec(CROP, UNIT), g).tolist() == [0, 0, 32, 32]
    with pytest.raises(ValueError, match="multiple of the 32-px token"):
        CanvasSpec(4090, UNIT)


def test_datasets_keep_their_crops_and_add_the_placement(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for side, name in ((256, "small"), (512, "frame")):
        Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
        Image.fromarray((rng.random((side // 4, side // 4, 3)) * 255).astype(np.uint8)).save(
            tmp_path / f"lr_{name}.png"
        )
    degradation = PRESETS["realesrgan"].with_scale(4)
    plain = DegradedCrops(tmp_path, 128, degradation)
    placed = DegradedCrops(tmp_path, 128, degradation, CanvasSpec(512, UNIT))
    lr, hr = plain[(1, 5)]
    lr2, hr2, where = placed[(1, 5)]  # "small" (256 px) is not a 512 canvas frame: same crop, random origin
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert where[2:].tolist() == [16, 16] and 0 <= int(where[0]) <= 12
    _, hr3, where3 = placed[(0, 5)]  # "frame" is a 512-px frame: the crop's true origin on the token grid
    full = torch.from_numpy(np.array(Image.open(tmp_path / "frame.png"))).permute(2, 0, 1).float() / 255
    y0, x0 = (int(v) * UNIT for v in where3[:2])
    torch.testing.assert_close(hr3, full[:, y0 : y0 + 128, x0 : x0 + 128], rtol=0, atol=1e-6)
    (tmp_path / "hr").mkdir(), (tmp_path / "lr").mkdir()
    for name in ("small", "frame"):
        (tmp_path / f"{name}.png").rename(tmp_path / "hr" / f"{name}.png")
        (tmp_path / f"lr_{name}.png").rename(tmp_path / "lr" / f"{name}.png")
    paired = PairedCrops(tmp_path / "hr", tmp_path / "lr", 128, 4, CanvasSpec(512, UNIT))
    lr4, hr4, where4 = paired[(0, 3)]
    assert lr4.shape == (3, 32, 32) and where4[2:].tolist() == [16, 16] and int(where4[0]) * UNIT <= 512 - 128
