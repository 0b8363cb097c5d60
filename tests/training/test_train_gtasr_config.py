"""GTASR trainer configuration (released values, validation, files + overrides), data and perceptual loss."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from gtasr_train_support import write_images
from sr4k.training.gtasr.config import PRESETS, GTASRTrainConfig, preset_name, resolve_config
from sr4k.training.gtasr.data import CropDataset, StepSampler, list_images, make_pairs, random_crop
from sr4k.training.gtasr.perceptual import (
    LPIPSUnavailableError,
    load_lpips_vgg,
    make_perceptual,
    standin_perceptual,
)


def test_presets_hold_the_released_recipe():
    s1, s2 = PRESETS["stage1"], PRESETS["stage2"]
    assert s1 == GTASRTrainConfig()
    shared = dict(
        lr=5e-5,
        betas=(0.9, 0.9),
        weight_decay=0.0,
        lr_milestones=(50_000,),
        lr_gamma=0.5,
        ema_decay=0.999,
        mixed_precision="no",
        gt_size=256,
        degradation="gtasr",
        network="released",
        lpips_weight=0.5,
        charbonnier_weight=0.5,
        perceptual="lpips_vgg",
    )
    for cfg in (s1, s2):
        assert {k: getattr(cfg, k) for k in shared} == shared
    assert (
        s1.stage,
        s1.batch_size,
        s1.total_steps,
        s1.power,
        s1.start_intervals,
        s1.end_intervals,
        s1.ta_weight,
        s1.save_every,
    ) == (1, 8, 500_000, 2.5, 4, 3, 0.5, 50_000)
    assert (
        s2.stage,
        s2.batch_size,
        s2.total_steps,
        s2.power,
        s2.start_intervals,
        s2.end_intervals,
        s2.ct_index_cap,
        s2.resync_every,
        s2.save_every,
    ) == (2, 6, 2000, 1.0, 3, 3, 3, 1000, 500)
    assert (
        s2.dtm_scale,
        s2.stab_coef,
        s2.rect_weight,
        s2.rect_mode,
        s2.dtm_weighting,
        s2.dtm_t_min,
        s2.dtm_t_max,
    ) == (0.8, 0.2, 1.0, "released", "improved", 0.1, 0.5)
    assert (s2.init_student_key, s2.init_ema_key, s2.frozen_init_key) == (
        "params",
        "params_ema",
        "params_ema",
    )
    assert PRESETS["tiny"].stage == 1 and PRESETS["tiny_stage2"].stage == 2
    assert preset_name(2, "tiny") == "tiny_stage2" and preset_name(1) == "stage1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage": 3}, "stage=3"),
        ({"gt_size": 100}, "multiple of 256"),
        ({"rect_mode": "both"}, "rect_mode='both'"),
        ({"perceptual": "vgg"}, "perceptual='vgg'"),
        ({"ema_decay": 1.0}, "ema_decay=1.0"),
        ({"network": "huge"}, "network='huge'"),
        ({"lr_milestones": (50, 10)}, "lr_milestones"),
        ({"stage": 2, "start_intervals": 4}, "start_intervals = end_intervals"),
        ({"stage": 2, "start_intervals": 3, "dtm_t_min": 0.3, "dtm_t_max": 0.4}, "no DTM level"),
    ],
)
def test_bad_settings_are_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PRESETS["stage1"], **change)
    assert dataclasses.replace(PRESETS["stage1"], lr=1e-4).lr == 1e-4  # a valid change passes


def test_file_and_cli_overrides(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "tiny"\ndata_dirs = ["/data/a", "/data/b"]\nlr = 1e-4\nrect_mode = "figure"\n')
    cfg = resolve_config(2, config_file=toml, overrides={"lr": 3e-4, "betas": [0.9, 0.99]})
    assert cfg == dataclasses.replace(
        PRESETS["tiny_stage2"],
        data_dirs=("/data/a", "/data/b"),
        lr=3e-4,
        betas=(0.9, 0.99),
        rect_mode="figure",
    )
    js = tmp_path / "run.json"
    js.write_text('{"stage": 1, "total_steps": 10}')
    assert resolve_config(1, config_file=js).total_steps == 10
    with pytest.raises(ValueError, match="--stage 2"):
        resolve_config(2, config_file=js)
    with pytest.raises(ValueError, match="valid GTASRTrainConfig keys"):
        resolve_config(1, overrides={"learning_rate": 1.0})
    with pytest.raises(ValueError, match="stage-1 preset"):
        resolve_config(2, preset="stage1")


# --------------------------------------------------------------------------------------------------- data


def test_image_listing_and_crops(tmp_path):
    with pytest.raises(ValueError, match="data_dirs"):
        list_images([], ("png",))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_images([tmp_path / "missing"], ("png",))
    data = write_images(tmp_path / "data", count=5)
    (data / "notes.txt").write_text("x")
    files = list_images([data], ("PNG",))
    assert len(files) == 5 and all(f.suffix == ".png" for f in files)
    image = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(2, 5, 7)
    crop = random_crop(image, 4, torch.Generator().manual_seed(0))
    h0 = int((crop[0, 0, 0] // 7).item())
    w0 = int((crop[0, 0, 0] % 7).item())
    assert torch.equal(crop, image[:, h0 : h0 + 4, w0 : w0 + 4])
    padded = random_crop(image, 8, torch.Generator().manual_seed(0))  # reflect-padded to 8 x 8 first
    assert padded.shape == (2, 8, 8) and torch.equal(padded[:, 5, :7], image[:, 3, :])


def test_dataset_is_a_function_of_seed_rank_and_index(tmp_path):
    files = list_images([write_images(tmp_path / "data", count=5)], ("png",))
    a, b = CropDataset(files, 32, seed=0, rank=0), CropDataset(files, 32, seed=0, rank=0)
    assert torch.equal(a[7], b[7]) and a[7].shape == (3, 32, 32) and 0 <= a[7].min() and a[7].max() <= 1
    assert not torch.equal(a[7], CropDataset(files, 32, seed=0, rank=1)[7])
    first_epoch = {tuple(a[i][:, 0, 0].tolist()) for i in range(5)}
    assert len(first_epoch) == 5  # an epoch visits every image once
    it = iter(StepSampler(start=12))
    assert [next(it) for _ in range(3)] == [12, 13, 14]


def test_pairs_are_in_minus_one_one_and_seeded():
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    clean = make_pairs(hr, "bicubic", 4, torch.Generator())
    assert clean.lq.shape == (2, 3, 8, 8) and clean.lq_up.shape == clean.gt.shape == (2, 3, 32, 32)
    torch.testing.assert_close(clean.gt, hr * 2 - 1)
    assert clean.lq.min() >= -1 and clean.lq.max() <= 1
    levels = (clean.lq + 1) / 2 * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)  # 8-bit quantised
    real = [make_pairs(hr, "gtasr", 4, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(real[0].lq, real[1].lq) and real[0].lq.shape == (2, 3, 8, 8)
    assert (real[0].lq_up - clean.lq_up).abs().mean() > 1e-3  # the Real-ESRGAN pipeline degrades more
    with pytest.raises(ValueError, match="unknown degradation"):
        make_pairs(hr, "jpeg", 4, torch.Generator())


# --------------------------------------------------------------------------------------------- perceptual


def test_standin_is_a_differentiable_distance_and_not_lpips():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 16, generator=g).requires_grad_(True), torch.rand(2, 3, 16, 16, generator=g)
    d = standin_perceptual(a, b)
    assert d.shape == (2,) and (d > 0).all() and torch.equal(standin_perceptual(b, b), torch.zeros(2))
    d.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert make_perceptual("standin") is standin_perceptual
    with pytest.raises(ValueError, match="unknown perceptual"):
        make_perceptual("dists")


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed here")
def test_missing_lpips_package_is_a_clear_error():
    with pytest.raises(LPIPSUnavailableError, match="pip install lpips"):
        load_lpips_vgg()


@pytest.mark.skipif(
    importlib.util.find_spec("lpips") is None or importlib.util.find_spec("torchvision") is None,
    reason="needs the optional lpips and torchvision packages",
)
def test_lpips_vgg_builds_from_local_files_only(tmp_path: Path):
    import torchvision

    with pytest.raises(LPIPSUnavailableError, match="vgg16-397923af.pth"):
        load_lpips_vgg(tmp_path / "absent.pth")
    vgg = torchvision.models.vgg16()  # random trunk standing in for the ImageNet file (same keys/shapes)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(vgg.state_dict(), path)
    lp = load_lpips_vgg(path)
    assert torch.equal(lp.model.net.slice3.state_dict()["14.weight"], vgg.features[14].weight)
    assert not any(p.requires_grad for p in lp.parameters())
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert torch.equal(lp(x, x), torch.zeros(2)) and (lp(x, y) > 0).all() and lp(x, y).shape == (2,)
    lp.train()
    assert not lp.model.training  # stays in eval mode
