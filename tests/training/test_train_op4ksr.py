"""OP4KSR LoRA trainer on CPU with a tiny diffusers FLUX and a small F16 VAE: learning, exact resume, accumulation,
pixel losses through the frozen decoder, the LoRA export, data determinism and config errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from op4ksr_train_support import (  # noqa: F401 - fixtures
    CROP,
    HR_SIDE,
    SCALE,
    SMALL_VAE,
    config,
    data,
    fresh_accelerate_state,
    small_flux,
    small_vae,
)
from sr4k.op4ksr_core.lora import merge_comfy_lora
from sr4k.srkit.degradations import PRESETS
from sr4k.srkit.periodicity import PeriodicityConfig
from sr4k.training.op4ksr import TrainResult, main, train
from sr4k.training.op4ksr.config import OP4KSRTrainConfig, load_train_config
from sr4k.training.op4ksr.data import DegradedCrops, StreamSampler
from sr4k.training.op4ksr.lora import add_lora


def run(cfg: OP4KSRTrainConfig) -> TrainResult:
    return train(cfg, transformer=small_flux(), vae=small_vae())


@pytest.fixture(scope="module")
def trained(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    # LoRA dropout on: exact resume must also cover the dropout stream (the global RNG)
    return run(config(data, tmp_path_factory.mktemp("run_a"), lora_dropout=0.1))


def test_latent_loss_goes_down(trained: TrainResult) -> None:
    totals = [h["total"] for h in trained.history]
    assert len(totals) == 20 and trained.step == 20
    first, last = np.mean(totals[:5]), np.mean(totals[-5:])
    print(f"latent MSE: mean of steps 1-5 {first:.4f}, of steps 16-20 {last:.4f}")
    assert last < 0.6 * first, (first, last)


def test_resume_continues_the_same_run_exactly(
    trained: TrainResult, data: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint = Path(trained.lora_path).parent / "checkpoint-00000010"
    assert (checkpoint / "model.safetensors").stat().st_size < 100_000  # LoRA only, not the base model
    resumed = run(config(data, tmp_path, steps=13, resume=str(checkpoint), lora_dropout=0.1))
    assert resumed.step == 13 and len(resumed.history) == 3
    assert resumed.history == trained.history[10:13]  # bitwise: same data, weights, Adam state
    done = run(
        config(data, checkpoint.parent, resume="latest", lora_dropout=0.1)
    )  # the finished run: newest checkpoint is step 20
    assert done.step == 20 and done.history == []


def test_export_is_the_trained_peft_lora(trained: TrainResult) -> None:
    checkpoint = Path(trained.lora_path).parent / "checkpoint-00000020"
    peft = small_flux()
    add_lora(peft, 4, 4.0, OP4KSRTrainConfig.lora_double_targets, OP4KSRTrainConfig.lora_single_targets)
    state = {
        k.removeprefix("transformer."): v for k, v in load_file(str(checkpoint / "model.safetensors")).items()
    }
    missing, unexpected = peft.load_state_dict(state, strict=False)
    assert not unexpected and all("lora_" not in k for k in missing)
    merged = small_flux()
    assert merge_comfy_lora(merged, trained.lora_path) == 17  # 12 double-block + 5 single-block modules
    g = torch.Generator().manual_seed(1)
    inputs = dict(
        hidden_states=torch.randn(1, 16, 64, generator=g),
        encoder_hidden_states=torch.zeros(1, 1, 32),
        pooled_projections=torch.zeros(1, 16),
        timestep=torch.tensor([0.5]),
        guidance=torch.tensor([3.5]),
        img_ids=torch.zeros(16, 3),
        txt_ids=torch.zeros(1, 3),
        return_dict=False,
    )
    with torch.no_grad():
        want, got, base = peft(**inputs)[0], merged(**inputs)[0], small_flux()(**inputs)[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (want - base).abs().max() > 1e-3  # the LoRA learned something


def _first_adam_moment(cfg: OP4KSRTrainConfig) -> tuple[list[dict[str, float]], list[torch.Tensor]]:
    """History and Adam's first moments after one step: exp_avg = (1 - beta1) * (clipped) gradient."""
    result = run(cfg)
    state = torch.load(Path(cfg.output_dir) / "checkpoint-00000001" / "optimizer.bin", weights_only=True)
    return result.history, [s["exp_avg"] for _, s in sorted(state["state"].items())]


def test_gradient_accumulation_equals_the_bigger_batch(data: tuple[Path, Path], tmp_path: Path) -> None:
    big_history, big = _first_adam_moment(config(data, tmp_path / "big", steps=1, batch_size=2))
    acc_history, acc = _first_adam_moment(config(data, tmp_path / "acc", steps=1, batch_size=1, grad_accum=2))
    assert len(big) == len(acc) == 34
    assert acc_history[0]["total"] == pytest.approx(big_history[0]["total"], rel=1e-5)
    scale = max(float(g.abs().max()) for g in big)
    assert scale > 0
    for got, want in zip(acc, big, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_pixel_losses_train_the_lora_through_the_frozen_decoder(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    calls = []

    def perceptual(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        calls.append((sr.shape, float(hr.min()), float(hr.max())))
        return (torch.nn.functional.avg_pool2d(sr - hr, 4) ** 2).mean(dim=(1, 2, 3))

    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    cfg = config(
        data,
        tmp_path,
        lr_dir="",
        steps=2,
        latent_weight=0.0,
        pixel_weight=1.0,
        perceptual_weight=0.5,
        perceptual="lpips",
        lambda_ap=0.5,
        ap=PeriodicityConfig(harmonics=1),
        ema_decay=0.5,
        gradient_checkpointing=True,
        mixed_precision="bf16",
        checkpoint_every=1,
    )
    result = train(cfg, transformer=small_flux(), vae=vae, perceptual=perceptual)
    assert [sorted(h) for h in result.history] == [["ap", "perceptual", "pixel", "total"]] * 2
    assert all(np.isfinite(v) for h in result.history for v in h.values())
    assert calls[0][0] == (1, 3, CROP, CROP) and -1.0 <= calls[0][1] < calls[0][2] <= 1.0
    for key, value in vae.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    lora = load_file(str(result.lora_path))
    assert max(float(v.abs().max()) for k, v in lora.items() if "lora_B" in k) > 0  # gradients reached B
    ckpt = tmp_path / "checkpoint-00000002"
    ema = load_file(str(ckpt / "extra_state.safetensors"))  # EMA of the unwrapped transformer's LoRA params
    assert {f"transformer.{k}" for k in ema} == set(load_file(str(ckpt / "model.safetensors")))
    assert len(ema) == 34 and any(v.abs().max() > 0 for k, v in ema.items() if "lora_B" in k)


def test_degraded_crops_are_a_function_of_the_key(data: tuple[Path, Path]) -> None:
    dataset = DegradedCrops(data[0], CROP, PRESETS["realesrgan"].with_scale(SCALE))
    lr, hr = dataset[(1, 123)]
    lr2, hr2 = dataset[(1, 123)]
    lr3, _ = dataset[(1, 124)]
    assert lr.shape == (3, CROP // SCALE, CROP // SCALE) and hr.shape == (3, CROP, CROP)
    torch.testing.assert_close(lr, lr2, rtol=0, atol=0)
    torch.testing.assert_close(hr, hr2, rtol=0, atol=0)
    assert (lr - lr3).abs().max() > 0.01
    torch.testing.assert_close(lr * 255, (lr * 255).round(), rtol=0, atol=1e-4)  # 8-bit levels


def test_stream_sampler_shards_and_resumes_the_global_stream() -> None:
    def take(sampler: StreamSampler, n: int) -> list[tuple[int, int]]:
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    single = take(StreamSampler(5, 2, seed=7), 24)
    ranks = [take(StreamSampler(5, 2, seed=7, rank=r, world=2), 12) for r in range(2)]
    interleaved = [key for m in range(6) for r in range(2) for key in ranks[r][2 * m : 2 * m + 2]]
    assert interleaved == single
    assert take(StreamSampler(5, 2, seed=7, start=10), 14) == single[10:]
    for epoch in range(4):  # every image once per epoch
        assert sorted(i for i, _ in single[5 * epoch : 5 * epoch + 5]) == list(range(5))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"t_star": 0.0}, "t_star"),
        ({"crop_size": 130}, "multiple of scale"),
        ({"lora_double_targets": ("attn.to_qkv",)}, "ComfyUI maps"),
        ({"lora_double_targets": (), "lora_single_targets": ()}, "no LoRA targets"),
        ({"latent_weight": 0.0, "perceptual_weight": 0.0, "lambda_ap": 0.0}, "all loss weights are 0"),
        ({"pixel_weight": -1.0}, "negative"),
        ({"perceptual": "none", "perceptual_weight": 0.1}, "perceptual = 'lpips'"),
        ({"canvas_long_side": 512}, "smaller than crop_size"),
        ({"decode_mode": "tiled"}, "decode_mode"),
        ({"degradation": "bsrgan"}, "degradation="),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"grad_accum": 0}, "grad_accum=0"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"axes_dims_rope": (16, 56)}, "axes_dims_rope"),
        ({"lambda_ap": 0.1, "crop_size": 128}, "crop_size >= 160"),
    ],
)
def test_config_validation_names_the_problem(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(OP4KSRTrainConfig(), **changes)


def test_config_file_and_cli_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.toml"
    path.write_text('lr = 5e-5\nsteps = 200\n[rfr]\nmode = "scale"\nalpha = 2\n[ap]\ndomain = "residual"\n')
    cfg = load_train_config(str(path), ["--steps", "300", "--rfr.alpha", "4", "--lora-rank", "16"])
    assert (cfg.lr, cfg.steps, cfg.lora_rank, cfg.rfr.mode, cfg.rfr.alpha, cfg.ap.domain) == (
        5e-5,
        300,
        16,
        "scale",
        4.0,
        "residual",
    )
    with pytest.raises(ValueError, match="unknown setting.*lora_rnak"):
        load_train_config(str(path), ["--lora_rnak", "8"])
    assert main(["--config", str(path), "--print-config", "--t_star", "0.25"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["t_star"] == 0.25 and printed["rfr"]["alpha"] == 2.0
    with pytest.raises(ValueError, match="set flux_path"):
        main(["--config", str(path), "--data_dir", str(tmp_path)])


def test_transformer_loads_from_a_file_with_the_configured_rope_split(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from sr4k.training.op4ksr import load_transformer

    reference = small_flux()
    save_file(
        {k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "flux.safetensors")
    )
    cfg = OP4KSRTrainConfig(
        flux_path=str(tmp_path / "flux.safetensors"), axes_dims_rope=(4, 6, 6), base_dtype="float32"
    )
    loaded = load_transformer(cfg)
    assert tuple(loaded.config.axes_dims_rope) == (4, 6, 6)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
