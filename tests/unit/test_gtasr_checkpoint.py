"""GTASR checkpoints: BasicSR/safetensors loading, config inference, conversion and clear errors."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gtasr_support import TINY, deterministic_init_
from sr4k.gtasr_core import (
    RELEASED,
    GTASRConfig,
    build,
    convert_to_safetensors,
    infer_config,
    load_gtasr,
    load_gtasr_state_dict,
)
from sr4k.gtasr_core.detect import GTASRCheckpointError
from sr4k.srkit.weights import CheckpointError


@pytest.fixture(scope="module")
def tiny_sd() -> dict[str, torch.Tensor]:
    return deterministic_init_(build(TINY)).state_dict()


def _shifted(sd: dict[str, torch.Tensor], delta: float) -> dict[str, torch.Tensor]:
    return {
        k: v + delta if v.is_floating_point() and not k.endswith("resample_filter") else v
        for k, v in sd.items()
    }


def _basicsr(sd: dict[str, torch.Tensor], path: Path, **extra: object) -> Path:
    """BasicSR save_network layout: params/params_ema, here with DataParallel 'module.' prefixes."""
    wrapped = {
        "params": {f"module.{k}": v for k, v in _shifted(sd, 0.01).items()},
        "params_ema": {f"module.{k}": v for k, v in sd.items()},
        **extra,
    }
    torch.save(wrapped, path)
    return path


def _output(net: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, 8, 16, generator=gen) * 2 - 1
    x = torch.randn(1, 3, 32, 64, generator=gen)
    with torch.no_grad():
        return net(x, 1.0, lq)


def test_basicsr_pth_and_safetensors_load_to_the_same_network(tmp_path: Path, tiny_sd: dict) -> None:
    pth = _basicsr(tiny_sd, tmp_path / "gtasr.pth")
    st = tmp_path / "gtasr.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_sd.items()}, str(st))
    a, b = load_gtasr(pth), load_gtasr(st)
    assert a.config == b.config == TINY and not a.training
    reference = _output(deterministic_init_(build(TINY)))
    # bitwise equal from the pickle; safetensors buffers have another memory alignment, so oneDNN may
    # sum in another order (measured 2e-6)
    assert torch.equal(_output(a), reference)
    torch.testing.assert_close(_output(b), reference, rtol=0, atol=1e-5)
    # params (non-EMA) on request: different weights, different output
    assert not torch.equal(_output(load_gtasr(pth, key="params")), reference)


def test_params_fallback_and_missing_key(
    tmp_path: Path, tiny_sd: dict, caplog: pytest.LogCaptureFixture
) -> None:
    only_params = tmp_path / "no_ema.pth"
    torch.save({"params": tiny_sd}, only_params)
    with caplog.at_level(logging.WARNING):
        sd = load_gtasr_state_dict(only_params)
    assert "no 'params_ema'" in caplog.text and torch.equal(
        sd["model.conv_last.bias"], tiny_sd["model.conv_last.bias"]
    )
    with pytest.raises(GTASRCheckpointError, match=r"no 'net_g' entry; it holds \['params', 'params_ema'\]"):
        load_gtasr_state_dict(_basicsr(tiny_sd, tmp_path / "b.pth"), key="net_g")


def test_bare_songunet_keys_and_in_memory_dict(tiny_sd: dict) -> None:
    bare = {k.removeprefix("model."): v for k, v in tiny_sd.items()}
    assert set(load_gtasr_state_dict(bare)) == set(tiny_sd)
    assert torch.equal(_output(load_gtasr({"params_ema": bare})), _output(load_gtasr(tiny_sd)))


def test_dtype_and_buffers(tiny_sd: dict) -> None:
    net = load_gtasr(tiny_sd, dtype=torch.float16)
    assert net.model.conv_last.weight.dtype == torch.float16
    index = dict(net.named_buffers())[
        "model.enc.16x16_block0.swin_layer.blocks.0.attn.relative_position_index"
    ]
    assert index.dtype == torch.int64
    # buffers are derived from the config: a checkpoint without them still loads, to the same network
    no_buffers = {
        k: v for k, v in tiny_sd.items() if not k.endswith(("relative_position_index", "resample_filter"))
    }
    assert torch.equal(_output(load_gtasr(no_buffers)), _output(load_gtasr(tiny_sd)))


def test_infer_config_reads_the_released_manifest(fixtures_dir: Path) -> None:
    manifest = json.loads((fixtures_dir / "gtasr" / "state_dict_manifest.json").read_text())
    sd = {}
    for e in manifest["entries"]:
        if e["key"].endswith("resample_filter"):
            sd[e["key"]] = torch.full(e["shape"], 0.25, dtype=torch.float16)
        else:  # shapes are all that matters: no memory for 171 M parameters
            sd[e["key"]] = torch.empty(e["shape"], device="meta")
    assert infer_config(sd) == RELEASED


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"channel_mult": (1, 2, 3), "train_resolution": 32, "attn_resolutions": (16,)},
        {"num_blocks": 2, "swin_depth": 2, "swin_num_heads": 4, "swin_mlp_ratio": 2.0},
        {"swin_use_conv": False, "channel_mult_emb": 3, "swin_embed_dim": 64},
        {"resample_filter": (1.0, 3.0, 3.0, 1.0), "model_channels": 64},
    ],
)
def test_infer_config_round_trips_variants(variant: dict) -> None:
    cfg = replace(TINY, **variant)
    assert infer_config(build(cfg).state_dict()) == cfg


def test_convert_to_safetensors(tmp_path: Path, tiny_sd: dict) -> None:
    dst = convert_to_safetensors(_basicsr(tiny_sd, tmp_path / "g.pth"), tmp_path / "out" / "g.safetensors")
    with safe_open(str(dst), "pt") as f:
        meta = f.metadata()
    assert meta["sr4k_arch"] == "gtasr"
    assert (
        GTASRConfig(
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in json.loads(meta["sr4k_gtasr_config"]).items()
            }
        )
        == TINY
    )
    torch.testing.assert_close(_output(load_gtasr(dst)), _output(load_gtasr(tiny_sd)), rtol=0, atol=1e-5)
    half = convert_to_safetensors(tiny_sd, tmp_path / "h.safetensors", dtype=torch.float16)
    assert load_gtasr_state_dict(half)["model.conv_last.weight"].dtype == torch.float16


def test_flux_state_dict_is_named(tmp_path: Path) -> None:
    flux = {
        "double_blocks.0.img_attn.qkv.weight": torch.zeros(9, 3),
        "single_blocks.0.linear1.weight": torch.zeros(3, 3),
        "img_in.weight": torch.zeros(3, 64),
    }
    path = tmp_path / "flux1-dev.safetensors"
    save_file(flux, str(path))
    with pytest.raises(
        GTASRCheckpointError,
        match=r"flux1-dev\.safetensors is not a GTASR network: it looks like a "
        r"FLUX transformer.*GTASR_final_phase\.pth.*Blaze-UESTC/GTASR",
    ):
        load_gtasr(path)
    sdxl = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="looks like a Stable Diffusion checkpoint"):
        infer_config(sdxl)


def test_missing_and_unexpected_keys_are_listed(tiny_sd: dict) -> None:
    broken = {k: v for k, v in tiny_sd.items() if "dec.16x16_block0.conv1" not in k}
    broken["model.extra_head.weight"] = torch.zeros(1)
    with pytest.raises(
        GTASRCheckpointError,
        match=r"2 missing keys, e.g. \['model.dec.16x16_block0.conv1.weight', "
        r"'model.dec.16x16_block0.conv1.bias'\]; 1 unexpected keys, e.g. "
        r"\['model.extra_head.weight'\]",
    ):
        load_gtasr(broken)
    wrong = dict(tiny_sd)
    wrong["model.enc.16x16_block0.affine.weight"] = torch.zeros(32, 7)
    with pytest.raises(
        GTASRCheckpointError, match=r"1 shape mismatches.*affine.weight: file \(32, 7\) vs net \(32, 64\)"
    ):
        load_gtasr(wrong)


def test_unsupported_variant_is_explained(tiny_sd: dict) -> None:
    sd = dict(tiny_sd)
    sd["model.enc.16x16_conv.weight"] = torch.zeros(32, 3 * 9 + 3, 3, 3)  # a x3 unshuffle
    with pytest.raises(GTASRCheckpointError, match="unsupported GTASR variant.*scale=3"):
        infer_config(sd)


def test_broken_files_give_file_errors(tmp_path: Path, tiny_sd: dict) -> None:
    pth = _basicsr(tiny_sd, tmp_path / "g.pth")
    data = pth.read_bytes()
    pth.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"g\.pth \(2\.\d MiB\) is truncated or corrupt.*Re-download"):
        load_gtasr(pth)
    bad = tmp_path / "bad.pth"
    torch.save({"params_ema": tiny_sd, "opt": logging.getLogger("x")}, bad)
    with pytest.raises(CheckpointError, match="holds Python objects besides tensors"):
        load_gtasr(bad)
    odd = tmp_path / "odd.pth"
    torch.save({"params_ema": {**tiny_sd, "note": "hi"}}, odd)
    with pytest.raises(CheckpointError, match=r"'note' \(str\)"):
        load_gtasr(odd)
