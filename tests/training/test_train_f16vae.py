"""F16 decoder trainer: the loss falls, resume is exact, the export carries its decode mode and loads.

The loss and resume tests use a small VAE of the same family (FLUX VAE layers, stride-2 input, final x2,
two levels) so they take seconds; the export test trains the real FLUX-size VAE (the tiny-models file)
for two steps through the CLI entry point, and the server test loads that export with OP4KSR_LoadF16VAE.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from comfy_harness import ComfyServer
from sr4k.op4ksr_core import settings as op4ksr_settings
from sr4k.op4ksr_core.vae import F16VAE
from sr4k.op4ksr_core.vae.config import FLUX_F16
from sr4k.op4ksr_core.vae.loader import load_f16_vae
from sr4k.srkit.weights import load_state_dict
from sr4k.training.f16vae import F16VAETrainConfig, read_settings
from sr4k.training.f16vae.data import HRCrops
from sr4k.training.f16vae.main import main, train
from sr4k.training.f16vae.model import trainable_modules
from synthetic_images import natural_image
from tiny_models import f16_vae_file, load

SMALL = replace(FLUX_F16, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8)


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """These models are small: one intra-op thread avoids oversubscription on shared CI cores (10-50x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_images(folder: Path, n: int = 4, size: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = natural_image(size, size, seed=i)[0].permute(1, 2, 0).numpy()
        Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def _small_vae(seed: int = 0) -> F16VAE:
    torch.manual_seed(seed)
    return F16VAE(SMALL, decode_mode="partitioned").eval()


def _config(tmp: Path, out: str, **kw: object) -> F16VAETrainConfig:
    base = dict(
        data_dir=str(tmp / "hr"),
        output_dir=str(tmp / out),
        crop_size=32,
        batch_size=2,
        num_workers=0,
        perceptual="standin",
        perceptual_weight=0.1,
        lr=3e-3,
        log_every=5,
        checkpoint_every=100,
        train_scope="decoder",
    )
    return F16VAETrainConfig(**{**base, **kw})


def test_reconstruction_loss_falls_on_a_small_synthetic_set(tmp_path: Path) -> None:
    _write_images(tmp_path / "hr")
    images = torch.cat([natural_image(48, 48, seed=i) for i in range(4)]) * 2 - 1  # the training images

    def held_l1(vae: F16VAE) -> float:  # reconstruction L1 of the whole images, posterior mean
        with torch.no_grad():
            return (vae.decode(vae.encode(images)) - images).abs().mean().item()

    vae = _small_vae()
    before = held_l1(vae)
    config = _config(tmp_path, "run", steps=60, lr=1e-3, sample_posterior=False)
    result = train(config, vae=vae, dataset=HRCrops(config.data_dir, 32))
    total = [h["total"] for h in result.history]
    assert all(np.isfinite(total))
    assert np.mean(total[-10:]) < 0.85 * np.mean(total[:10]), total
    after = held_l1(vae)
    assert after < 0.75 * before, f"reconstruction L1 {before:.4f} -> {after:.4f}"


def test_only_the_scope_trains_and_the_encoder_stays_frozen(tmp_path: Path) -> None:
    _write_images(tmp_path / "hr")
    vae = _small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    config = _config(tmp_path, "tail", steps=3, train_scope="tail")
    train(config, vae=vae, dataset=HRCrops(config.data_dir, 32))
    changed = {k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {
        "decoder.conv_norm_out.weight",
        "decoder.conv_norm_out.bias",
        "decoder.conv_out.weight",
        "decoder.conv_out.bias",
    }
    scopes = {
        s: sum(p.numel() for m in trainable_modules(vae, s) for p in m.parameters())
        for s in ("tail", "last_block", "decoder")
    }
    assert scopes["tail"] < scopes["last_block"] < scopes["decoder"]


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path: Path) -> None:
    _write_images(tmp_path / "hr")
    common = dict(steps=6, checkpoint_every=3, ema_decay=0.9, sample_posterior=True)
    straight = train(_config(tmp_path, "a", **common), vae=_small_vae(), dataset=HRCrops(tmp_path / "hr", 32))
    train(
        _config(tmp_path, "b", **{**common, "steps": 3}),
        vae=_small_vae(),
        dataset=HRCrops(tmp_path / "hr", 32),
    )
    resumed = train(
        _config(tmp_path, "b", **common, resume="latest"),
        vae=_small_vae(),
        dataset=HRCrops(tmp_path / "hr", 32),
    )
    assert resumed.history == straight.history[3:]
    a, b = load_file(str(straight.vae_path)), load_file(str(resumed.vae_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and the checkpoint holds only the trainable decoder, not the frozen encoder
    ckpt = load_file(str(tmp_path / "b" / "checkpoint-00000003" / "model.safetensors"))
    assert ckpt and all(k.startswith("vae.decoder.") for k in ckpt)


def test_a_bfloat16_base_trains_float32_master_weights(tmp_path: Path) -> None:
    """base_dtype bfloat16 at a fine-tune's lr: every trainable weight moves (AdamW on bfloat16 weights
    rounds most updates of 1e-5 away; measured 8.5 % of them moved), and the frozen encoder stays bfloat16."""
    _write_images(tmp_path / "hr")
    vae = _small_vae().to(torch.bfloat16)
    before = {n: p.detach().float().clone() for n, p in vae.decoder.named_parameters()}
    config = _config(tmp_path, "out", lr=1e-5, steps=1, base_dtype="bfloat16", checkpoint_every=1)
    train(config, vae=vae, dataset=HRCrops(config.data_dir, 32))
    assert {p.dtype for p in vae.decoder.parameters()} == {torch.float32}
    assert {p.dtype for p in vae.encoder.parameters()} == {torch.bfloat16}
    moved = sum(int((p.detach() != before[n]).sum()) for n, p in vae.decoder.named_parameters())
    total = sum(p.numel() for p in vae.decoder.parameters())
    assert moved > 0.99 * total, f"{moved} of {total} decoder weights moved"


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tail steps on the real FLUX-size VAE through the CLI entry point (``main``)."""
    tmp = tmp_path_factory.mktemp("f16vae")
    _write_images(tmp / "hr", n=2, size=32)
    cfg = tmp / "f16vae.toml"
    cfg.write_text(
        f'vae_path = "{f16_vae_file("bfl")}"\ndata_dir = "{tmp / "hr"}"\noutput_dir = "{tmp / "out"}"\n'
        'crop_size = 32\nbatch_size = 1\nnum_workers = 0\nsteps = 2\nlr = 0.05\nperceptual = "standin"\n'
    )
    assert main(["--config", str(cfg), "--log_every", "1"]) == 0
    return tmp / "out" / "f16_vae.safetensors"


def test_export_is_a_diffusers_f16_vae_with_its_decode_mode(trained_export: Path) -> None:
    settings = read_settings(trained_export)
    assert settings["decode_mode"] == "partitioned" and settings["vae_layout"] == "diffusers"
    assert settings["train_scope"] == "tail"
    sd = load_state_dict(trained_export)
    assert (
        "decoder.up_blocks.0.resnets.0.conv1.weight" in sd and "decoder.up.0.block.0.conv1.weight" not in sd
    )
    trained = load_f16_vae(sd, settings["decode_mode"], dtype=torch.float32)  # the CLI's loader
    raw = load(f16_vae_file("bfl"))
    assert not torch.equal(trained.decoder.conv_out.weight, raw["decoder.conv_out.weight"].float())
    assert torch.equal(trained.encoder.conv_in.weight, raw["encoder.conv_in.weight"].float())  # frozen
    assert json.loads(json.dumps(settings)) == settings
    # The loaders' decode_mode=auto reads it through the one settings reader (extra fields ignored).
    assert op4ksr_settings.read_settings(trained_export).decode_mode == "partitioned"


@pytest.mark.comfy
def test_export_loads_through_the_f16_vae_node(comfy_server: ComfyServer, trained_export: Path) -> None:
    link = comfy_server.models / "vae" / "sr4k_test_f16_trained.safetensors"
    if not link.exists():
        link.symlink_to(trained_export)
    src = (natural_image(48, 64, seed=5)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(src).save(comfy_server.input_dir / "sr4k_f16vae_test.png")

    def roundtrip(vae_name: str) -> np.ndarray:
        prompt = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "sr4k_f16vae_test.png"}},
            "2": {
                "class_type": "OP4KSR_LoadF16VAE",
                "inputs": {"vae_name": vae_name, "decode_mode": "partitioned"},
            },
            "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["2", 0]}},
            "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["2", 0]}},
            "5": {
                "class_type": "SaveImage",
                "inputs": {"images": ["4", 0], "filename_prefix": "f16vae_test"},
            },
        }
        return comfy_server.images(comfy_server.run(prompt), "5")[0].astype(np.float64)

    served = roundtrip(link.name)
    vae = load_f16_vae(load_state_dict(trained_export), "partitioned", dtype=torch.float32)
    with torch.no_grad():
        x = torch.from_numpy(src).float().div(255).permute(2, 0, 1)[None] * 2 - 1
        ours = ((vae.decode(vae.encode(x)) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    ours = np.clip(ours, 0, 255).astype(np.uint8).astype(np.float64)
    assert served.shape == (48, 64, 3)
    assert np.abs(served - ours).max() <= 1
    raw_name = "sr4k_test_f16_raw.safetensors"
    raw_link = comfy_server.models / "vae" / raw_name
    if not raw_link.exists():
        raw_link.symlink_to(f16_vae_file("bfl"))
    assert np.abs(roundtrip(raw_name) - served).mean() > 5  # the node used the trained decoder
