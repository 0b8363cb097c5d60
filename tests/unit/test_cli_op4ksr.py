"""``sr4k upscale --model op4ksr`` on the tiny detectable FLUX and a real-size F16 VAE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sr4k.cli.main import UPSCALERS, build_parser, main
from sr4k.op4ksr_core.flux.forward import set_rfr
from sr4k.op4ksr_core.flux.loader import load_flux_transformer
from sr4k.op4ksr_core.headless import upscale_image
from sr4k.op4ksr_core.onestep import OneStepConfig
from sr4k.op4ksr_core.rfr import RFR_PRESETS
from sr4k.op4ksr_core.vae.compile import VAE_COMPILED_BLOCKS
from sr4k.op4ksr_core.vae.loader import load_f16_vae
from sr4k.srkit import perf
from sr4k.srkit.regional_compile import compiled_modules
from tiny_models import f16_vae_file, load, tiny_flux_bfl_file


def test_cli_matches_the_headless_pipeline(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    lr = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(lr).save(tmp_path / "in.png")
    flux, vae = tiny_flux_bfl_file(), f16_vae_file("bfl")
    status = main(
        [
            "upscale",
            "--model",
            "op4ksr",
            "--flux",
            str(flux),
            "--vae",
            str(vae),
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--long-side",
            "128",
            "--rfr",
            "scale_2x",
            "--t-star",
            "0.25",
            str(tmp_path / "in.png"),
            str(tmp_path / "out.png"),
        ]
    )
    assert status == 0
    out = np.array(Image.open(tmp_path / "out.png"))
    assert out.shape == (96, 128, 3)
    transformer = set_rfr(load_flux_transformer(load(flux)), RFR_PRESETS["scale_2x"])
    f16 = load_f16_vae(load(vae), "aligned", dtype=torch.float32)
    x = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]
    ref = upscale_image(transformer, f16, x, long_side=128, config=OneStepConfig(t_star=0.25))
    ref8 = (ref[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(ref8 - out).max() <= 1


def test_guidance_comes_from_the_weights_unless_a_flag_says(tmp_path: Path) -> None:
    """A fine-tune trained at guidance 1.0 runs at 1.0 (its metadata), ``--guidance`` overrides it."""
    from safetensors.torch import save_file

    from sr4k.op4ksr_core.settings import OP4KSRSettings, to_metadata

    lr = (np.random.default_rng(4).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(lr).save(tmp_path / "in.png")
    flux = tmp_path / "ft_guidance1.safetensors"
    save_file(load(tiny_flux_bfl_file()), str(flux), metadata=to_metadata(OP4KSRSettings(guidance=1.0)))
    vae = f16_vae_file("bfl")
    transformer = set_rfr(load_flux_transformer(load(flux)), RFR_PRESETS["ntk"])
    f16 = load_f16_vae(load(vae), "aligned", dtype=torch.float32)
    x = torch.from_numpy(lr).float().div(255).permute(2, 0, 1)[None]

    def headless(guidance: float) -> np.ndarray:
        out = upscale_image(transformer, f16, x, long_side=128, config=OneStepConfig(guidance=guidance))
        return (out[0].permute(1, 2, 0).numpy() * 255).round()

    def cli(*flags: str) -> np.ndarray:
        args = ["upscale", "--model", "op4ksr", "--flux", str(flux), "--vae", str(vae), "--device", "cpu"]
        out = tmp_path / f"out{len(flags)}.png"
        assert (
            main([*args, "--dtype", "fp32", "--long-side", "128", *flags, str(tmp_path / "in.png"), str(out)])
            == 0
        )
        return np.array(Image.open(out)).astype(np.float64)

    at_1, at_default = headless(1.0), headless(3.5)
    assert np.abs(at_1 - at_default).max() > 8  # guidance matters on this model
    assert np.abs(cli() - at_1).max() <= 1
    assert np.abs(cli("--guidance", "3.5") - at_default).max() <= 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["upscale", "--guidance", "-1", "a.png", "b.png"])


@pytest.mark.parametrize(
    ("extra", "message"), [([], "needs --flux"), (["--flux", "nope.safetensors"], "does not exist")]
)
def test_missing_weights_are_clear_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, extra: list, message: str
) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    with caplog.at_level("ERROR", logger="sr4k"):
        status = main(
            [
                "upscale",
                "--model",
                "op4ksr",
                *extra,
                "--vae",
                str(tmp_path / "in.png"),
                str(tmp_path / "in.png"),
                str(tmp_path / "out.png"),
            ]
        )
    assert status == 1
    assert message in caplog.text


def _tiny_op4ksr_argv() -> list[str]:
    """``sr4k upscale --model op4ksr`` on the tiny FLUX and F16 VAE files (inputs and options to follow)."""
    return [
        "upscale",
        "--model",
        "op4ksr",
        "--flux",
        str(tiny_flux_bfl_file()),
        "--vae",
        str(f16_vae_file("bfl")),
    ]


def test_compile_flag_compiles_flux_blocks_and_vae_blocks() -> None:
    """``--compile`` compiles the FLUX blocks and the F16 VAE's resnets and downsamplers at load (the
    compilation itself happens on the first image; compiled vs eager: tests/unit/test_perf_compile.py)."""
    common = _tiny_op4ksr_argv()
    args = build_parser().parse_args([*common, "--compile", "in.png", "out.png"])
    up = UPSCALERS["op4ksr"].load(args, torch.device("cpu"), torch.float32)
    vae_blocks = [m for m in up.vae.modules() if isinstance(m, VAE_COMPILED_BLOCKS)]
    assert vae_blocks and compiled_modules(up.vae) == vae_blocks
    assert len(compiled_modules(up.transformer)) == 2  # TINY_FLUX: one double and one single block
    # images run in the layout measured fastest compiled, scoped to the upscaler's calls (nothing process-wide)
    assert up.perf_options == perf.COMPILED and perf.current() == perf.PerfOptions()
    plain = UPSCALERS["op4ksr"].load(
        build_parser().parse_args([*common, "in.png", "out.png"]), torch.device("cpu"), torch.float32
    )
    assert plain.perf_options is None


@pytest.mark.parametrize(("compiled", "mode"), [(False, "weight_only"), (True, "rowwise")])
def test_low_vram_quantises_activations_only_when_compiled(compiled: bool, mode: str) -> None:
    """--low-vram: fp8 weight-only eager (row-wise was slower there), row-wise under --compile (faster there:
    0.957 vs 1.067 s per 4K image on an H200, benchmarks/RESULTS.md 2026-11-30)."""
    from sr4k.op4ksr_core.flux.fp8_linear import FP8Linear

    argv = _tiny_op4ksr_argv()
    argv += ["--low-vram", *(["--compile"] if compiled else []), "in.png", "out.png"]
    up = UPSCALERS["op4ksr"].load(build_parser().parse_args(argv), torch.device("cpu"), torch.float32)
    modes = {m.mode for m in up.transformer.modules() if isinstance(m, FP8Linear)}
    assert modes == {mode}


@pytest.mark.parametrize("decode_mode", ["aligned", "partitioned"])
def test_headless_with_every_unmeasured_candidate_matches_baseline(decode_mode: str) -> None:
    """The whole OP4KSR pipeline (real-size F16 VAE) with the candidates the next GPU run measures all on:
    channels_last VAE with the layout-keeping GroupNorm forced, fused upsample convs in the decoder."""
    from sr4k.op4ksr_core.vae.model import set_vae_layout
    from sr4k.srkit import perf

    transformer = set_rfr(load_flux_transformer(load(tiny_flux_bfl_file())), RFR_PRESETS["scale_2x"])
    f16 = load_f16_vae(load(f16_vae_file("bfl")), decode_mode, dtype=torch.float32)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(5))
    cfg = OneStepConfig(t_star=0.25)
    with perf.options(perf.BASELINE):
        ref = upscale_image(transformer, f16, x, long_side=128, config=cfg)
    on = dict(vae_channels_last=True, nhwc_group_norm="on", fused_upsample_conv=True)
    with perf.options(perf.PerfOptions(), **on):
        out = upscale_image(transformer, f16, x, long_side=128, config=cfg)
    set_vae_layout(f16, False)
    assert out.shape == ref.shape and float((out - ref).norm() / ref.norm()) < 1e-5
