"""Settings carried in safetensors metadata: round trip, header-only read, clear errors, resolve order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sr4k.op4ksr_core.settings import (
    AMBIGUOUS_DIFFUSERS_VAE,
    DEFAULTS,
    METADATA_KEY,
    OP4KSRSettings,
    auto_decode_mode,
    default_decode_mode,
    from_metadata,
    from_widgets,
    read_settings,
    resolve,
    to_metadata,
)

FULL = OP4KSRSettings(
    t_star=0.37,
    input_mode="flow",
    rfr_mode="scale",
    rfr_alpha=2.0,
    reference_tokens=64,
    decode_mode="partitioned",
    canvas_long_side=4096,
    guidance=1.0,
)


def test_metadata_round_trip_through_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_file({"x": torch.zeros(3)}, str(path), metadata={**to_metadata(FULL), "other": "kept"})
    assert read_settings(path) == FULL
    assert json.loads(to_metadata(FULL)[METADATA_KEY])["t_star"] == 0.37
    partial = OP4KSRSettings(t_star=0.25)
    assert json.loads(to_metadata(partial)[METADATA_KEY]) == {"t_star": 0.25}
    assert from_metadata(to_metadata(partial)) == partial


def test_no_metadata_or_other_formats_mean_unknown(tmp_path: Path) -> None:
    plain = tmp_path / "flux.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    assert read_settings(plain) is None
    assert from_metadata(None) is None and from_metadata({"format": "pt"}) is None
    assert read_settings(tmp_path / "model.gguf") is None  # never opened


def test_header_only_read_does_not_touch_tensor_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    save_file({"x": torch.zeros(1000)}, str(path), metadata=to_metadata(FULL))
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    data[8 + header_len :] = b"\xff" * (len(data) - 8 - header_len)  # tensor bytes garbage: still readable
    path.write_bytes(bytes(data[: 8 + header_len + 10]))  # and truncated
    assert read_settings(path) == FULL


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"t_star": 1.5}', "t_star=1.5"),
        ('{"input_mode": "noise"}', "input_mode='noise'"),
        ('{"decode_mode": "auto"}', "decode_mode='auto'"),
        ('{"reference_tokens": 6.5}', "reference_tokens=6.5"),
        ('{"guidance": -1}', "guidance=-1"),
        ('{"guidance": "high"}', "guidance='high'"),
    ],
)
def test_malformed_metadata_is_a_clear_error(raw: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        from_metadata({METADATA_KEY: raw})
    path = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={METADATA_KEY: raw})
    with pytest.raises(ValueError, match="bad.safetensors"):
        read_settings(path)


def test_fields_of_a_newer_version_are_ignored() -> None:
    assert from_metadata({METADATA_KEY: '{"t_star": 0.4, "f16_decoder_steps": 1000}'}) == OP4KSRSettings(
        t_star=0.4
    )


def test_a_file_that_is_not_safetensors_is_named(tmp_path: Path) -> None:
    path = tmp_path / "fake.safetensors"
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello")
    with pytest.raises(ValueError, match="fake.safetensors is not a safetensors file"):
        read_settings(path)


def test_resolve_prefers_widgets_then_metadata_then_defaults() -> None:
    meta = OP4KSRSettings(t_star=0.3, input_mode="flow", rfr_mode="none")
    widgets = from_widgets(t_star=0, input_mode="auto", rfr_mode="scale", rfr_alpha=2.0, decode_mode="auto")
    assert widgets == OP4KSRSettings(rfr_mode="scale", rfr_alpha=2.0)
    got = resolve(widgets, meta)
    assert (got.t_star, got.input_mode, got.rfr_mode, got.rfr_alpha) == (0.3, "flow", "scale", 2.0)
    assert (got.reference_tokens, got.canvas_long_side) == (DEFAULTS.reference_tokens, 4096)
    assert resolve(from_widgets(t_star=0.7), meta).t_star == 0.7  # an explicit value always wins
    assert resolve(None, None) == DEFAULTS
    assert (DEFAULTS.t_star, DEFAULTS.input_mode, DEFAULTS.rfr_mode, DEFAULTS.guidance) == (
        0.5,
        "direct",
        "ntk",
        3.5,
    )
    assert resolve(None, OP4KSRSettings(guidance=1)).guidance == 1.0  # stored as a float


def test_decode_mode_default_follows_the_vae_layout() -> None:
    assert default_decode_mode("bfl") == "aligned"
    assert default_decode_mode("diffusers") == "partitioned"
    with pytest.raises(ValueError, match="layout"):
        default_decode_mode("gguf")


def test_auto_warns_when_a_diffusers_layout_vae_could_be_the_raw_flux_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key layout cannot tell an F16 decoder from FLUX.1-dev's own diffusers-layout VAE: ``auto`` says so."""
    diffusers = {"encoder.down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}
    bfl = {"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}
    with caplog.at_level("WARNING", logger="sr4k.op4ksr_core.settings"):
        assert auto_decode_mode(bfl) == "aligned"
        assert not caplog.records
        assert auto_decode_mode(diffusers, OP4KSRSettings(decode_mode="partitioned")) == "partitioned"
        assert not caplog.records  # the file says so: nothing to guess
        assert auto_decode_mode(diffusers) == "partitioned"
    assert [r.getMessage() for r in caplog.records] == [AMBIGUOUS_DIFFUSERS_VAE]
    assert "set decode_mode to 'aligned'" in AMBIGUOUS_DIFFUSERS_VAE
