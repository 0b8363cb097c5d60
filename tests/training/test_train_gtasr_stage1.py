"""GTASR stage I end to end on the tiny preset: losses fall, the step count drops, resume is exact, and the
exported BasicSR checkpoint loads through gtasr_core."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from gtasr_train_support import one_thread, paired_objective, tiny_config, window_means, write_images
from sr4k.gtasr_core import load_gtasr, upscale
from sr4k.training.common import EXTRA_FILE
from sr4k.training.gtasr import setup_run, train

STEPS = 40  # the schedule drops from 5 to 4 points at step 20

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gtasr_stage1")
    data = write_images(root / "data")
    config = tiny_config(1, data, root / "out", total_steps=STEPS, save_every=STEPS // 2)
    return config, train(config), data


def test_stage1_losses_decrease(run):
    config, result, data = run
    assert result.step == STEPS and len(result.history) == STEPS
    early, late = window_means(result.history, "total", 10)
    assert late < 0.85 * early, (early, late)
    # paired: the same batches, noises and CT indices, initial weights vs trained weights
    initial = setup_run(dataclasses.replace(config, resume=""), Accelerator(cpu=True)).raw
    trained = load_gtasr(result.weights, key="params")
    before, after = paired_objective(config, initial, data), paired_objective(config, trained, data)
    assert after["total"] < 0.7 * before["total"], (before, after)
    assert after["ta"] < before["ta"] and after["ct"] < before["ct"]


def test_stage1_step_count_decreases_in_the_loop(run):
    _, result, _ = run
    n = [int(h["ct_index"]) for h in result.history]
    assert max(n[:19]) == 3  # N = 5 points: pairs (0,1) .. (3,4)
    assert max(n[19:]) <= 2 and min(n) == 0  # N = 4 from step 20 on (total / 2)


def test_checkpoint_layout_and_loader(run):
    config, result, _ = run
    out = Path(config.output_dir)
    assert result.weights == out / "gtasr_stage1.pth"
    ckpt = torch.load(result.weights, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"params", "params_ema"}
    assert set(ckpt["params"]) == set(ckpt["params_ema"])
    key = "model.conv_last.weight"
    assert not torch.equal(ckpt["params"][key], ckpt["params_ema"][key])  # EMA differs from the online net
    extra = load_file(str(out / f"checkpoint-{STEPS:08d}" / EXTRA_FILE))
    torch.testing.assert_close(ckpt["params_ema"][key], extra[f"ema.{key}"], rtol=0, atol=0)
    net = load_gtasr(result.weights)  # params_ema by default
    assert net.config == config.network_config
    torch.testing.assert_close(net.state_dict()[key], ckpt["params_ema"][key], rtol=0, atol=0)
    from_st = load_gtasr(out / "gtasr_stage1_ema.safetensors")
    for k, v in net.state_dict().items():
        assert torch.equal(from_st.state_dict()[k], v), k
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = upscale(net, lr, seed=0), upscale(from_st, lr, seed=0)
    assert a.shape == (1, 3, 32, 32) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # same weights; kernel choice may differ by 1 ulp


def test_resume_continues_exactly(run, tmp_path):
    config, result, _ = run
    half = f"checkpoint-{STEPS // 2:08d}"
    shutil.copytree(Path(config.output_dir) / half, tmp_path / half)
    resumed = train(dataclasses.replace(config, output_dir=str(tmp_path), resume="latest"))
    assert resumed.step == STEPS and [h["step"] for h in resumed.history] == list(
        range(STEPS // 2 + 1, STEPS + 1)
    )
    for a, b in zip(result.history[STEPS // 2 :], resumed.history, strict=True):
        for key in ("total", "ct", "ta", "ct_index"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["step"], key)
    first = torch.load(result.weights, weights_only=True)
    second = torch.load(resumed.weights, weights_only=True)
    for part in ("params", "params_ema"):
        for k, v in first[part].items():
            torch.testing.assert_close(second[part][k], v, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    importlib.util.find_spec("lpips") is None or importlib.util.find_spec("torchvision") is None,
    reason="needs the optional lpips and torchvision packages (the train extra)",
)
def test_resume_is_exact_with_the_released_perceptual_loss(tmp_path):
    """LPIPS (the released loss) initialises layers from the global RNG when built: a resume must not shift the
    dropout stream by building it after the checkpoint's RNG states are restored."""
    import torchvision

    vgg = tmp_path / "vgg16-397923af.pth"  # a random trunk standing in for the ImageNet file (same keys)
    torch.save(torchvision.models.vgg16().state_dict(), vgg)
    data = write_images(tmp_path / "data", count=4)
    config = tiny_config(
        1, data, tmp_path / "a", total_steps=4, save_every=2, perceptual="lpips_vgg", vgg16_weights=str(vgg)
    )
    full = train(config)
    shutil.copytree(tmp_path / "a" / "checkpoint-00000002", tmp_path / "b" / "checkpoint-00000002")
    resumed = train(dataclasses.replace(config, output_dir=str(tmp_path / "b"), resume="latest"))
    assert [h["total"] for h in resumed.history] == [h["total"] for h in full.history[2:]]
    first, second = (torch.load(r.weights, weights_only=True)["params"] for r in (full, resumed))
    assert all(torch.equal(first[k], second[k]) for k in first)
