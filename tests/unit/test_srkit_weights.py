"""srkit.weights: safe loading of .safetensors / .pth with clear errors for every broken-file case."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sr4k.srkit.weights import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_state_dict,
    save_safetensors,
    strip_prefix,
)


class NotATensor:
    """A custom class: pickling it makes a file that weights_only loading must refuse."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _sd() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(4, 3, generator=gen),
        "a.bias": torch.randn(4, generator=gen),
        "idx": torch.arange(5),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt", ".ckpt"])
def test_round_trip_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(_sd(), str(path))
    else:
        torch.save(_sd(), path)
    _assert_same(load_state_dict(path), _sd())


def test_nested_checkpoint_needs_key(tmp_path: Path) -> None:
    path = tmp_path / "basicsr.pth"
    torch.save({"params": _sd(), "params_ema": {k: v + 1 for k, v in _sd().items()}, "iter": 7}, path)
    assert load_checkpoint(path)["iter"] == 7
    _assert_same(load_state_dict(path, key="params"), _sd())
    with pytest.raises(
        CheckpointError, match=r"wrapper around \['params', 'params_ema'\]; choose one with key="
    ):
        load_state_dict(path)
    with pytest.raises(
        CheckpointError, match=r"no entry 'state_dict'; available: \['iter', 'params', 'params_ema'\]"
    ):
        load_state_dict(path, key="state_dict")


def test_truncated_safetensors_names_file_size_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_sd(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError,
        match=rf"model\.safetensors \({len(data) // 2} bytes\) is truncated or "
        r"corrupt.*Re-download",
    ):
        load_state_dict(path)


def test_truncated_pth(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(_sd(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(
        CheckpointError, match=r"model\.pth \(\d+ bytes\) is truncated or corrupt.*Re-download"
    ):
        load_state_dict(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(random.Random(0).randbytes(4096))  # fixed bytes: the outcome must not be luck
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state_dict(path)


def test_pickle_with_python_object_is_refused_with_explanation(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"weight": torch.ones(2), "extra": NotATensor()}, path)
    with pytest.raises(
        CheckpointError,
        match=r"holds Python objects besides tensors.*weights_only=True.*"
        r"model\.state_dict\(\)",
    ):
        load_state_dict(path)


def test_non_tensor_entries_and_non_mapping(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"weight": torch.ones(2), "note": "hello"}, path)
    with pytest.raises(
        CheckpointError, match=r"not a plain state dict: 1 entries are not tensors, e.g. 'note' \(str\)"
    ):
        load_state_dict(path)
    torch.save([torch.ones(2)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        load_checkpoint(path)


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    with pytest.raises(
        ValueError,
        match=r"unsupported checkpoint extension '\.onnx'; expected one of "
        r"\.safetensors, \.pth",
    ):
        load_state_dict(path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_state_dict(tmp_path / "missing.pth")


def test_strip_prefix_and_extract() -> None:
    sd = {"module.a": torch.ones(1), "b": torch.zeros(1)}
    assert list(strip_prefix(sd)) == ["a", "b"]
    assert list(extract_state_dict({"x": sd}, "x")) == ["module.a", "b"]


def test_save_safetensors_round_trip_and_metadata(tmp_path: Path) -> None:
    base = torch.randn(6)
    sd = {"shared_a": base, "shared_b": base, "view": base[:3]}  # shared storage must not break saving
    out = save_safetensors(sd, tmp_path / "sub" / "w.safetensors", metadata={"arch": "test"})
    loaded = load_state_dict(out)
    assert torch.equal(loaded["shared_b"], base) and torch.equal(loaded["view"], base[:3])
    assert not (tmp_path / "sub" / "w.safetensors.partial").exists()
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_safetensors(sd, tmp_path / "w.pth")
