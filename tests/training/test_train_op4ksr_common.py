"""Shared trainer helpers (training/common/): overrides, typed config building, seeds, EMA, checkpoint listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sr4k.op4ksr_core.rfr import RFRConfig
from sr4k.training.common import (
    EMA,
    STATE_FILE,
    build_dataclass,
    checkpoint_dir,
    derive_seed,
    list_checkpoints,
    load_config_file,
    merge_settings,
    parse_overrides,
    prune_checkpoints,
)


def test_overrides_parse_json_values_nested_keys_and_dashes() -> None:
    got = parse_overrides(["--lr", "1e-4", "--rfr.mode=scale", "--mixed-precision", "bf16", "--flag", "true"])
    assert got == {"lr": 1e-4, "rfr": {"mode": "scale"}, "mixed_precision": "bf16", "flag": True}
    with pytest.raises(ValueError, match="has no value"):
        parse_overrides(["--lr"])
    with pytest.raises(ValueError, match="--key value"):
        parse_overrides(["lr", "1"])


def test_merge_and_build_coerce_types_and_reject_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('mode = "scale"\nalpha = 2\n')
    data = merge_settings(load_config_file(path), parse_overrides(["--reference_grid", "32,48"]))
    cfg = build_dataclass(RFRConfig, data)
    assert cfg == RFRConfig(mode="scale", alpha=2.0, reference_grid=(32.0, 48.0))
    assert isinstance(cfg.alpha, float)
    with pytest.raises(ValueError, match="unknown setting.*alpah.*valid RFRConfig keys"):
        build_dataclass(RFRConfig, {"alpah": 2})
    with pytest.raises(ValueError, match=r"mode='ntkk': choose one of"):
        build_dataclass(RFRConfig, {"mode": "ntkk"})
    with pytest.raises(ValueError, match="use a .toml or .json"):
        (tmp_path / "c.yaml").write_text("a: 1")
        load_config_file(tmp_path / "c.yaml")


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, i, j) for i in range(10) for j in range(10)}) == 100
    assert 0 <= derive_seed(123, 4) < 2**63


def test_ema_follows_the_closed_form() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([("p", p)], decay=0.9)
    for value in (1.0, 2.0):
        with torch.no_grad():
            p.fill_(value)
        ema.update([("p", p)])
    # s1 = 0.1 * 1 = 0.1; s2 = 0.9 * 0.1 + 0.1 * 2 = 0.29
    torch.testing.assert_close(ema.state_dict()["p"], torch.full((3,), 0.29))
    with pytest.raises(ValueError, match="EMA state"):
        ema.load_state_dict({"q": torch.zeros(3)})
    with pytest.raises(ValueError, match="decay"):
        EMA([], decay=1.0)


def test_only_complete_checkpoints_are_listed_and_pruned(tmp_path: Path) -> None:
    for step in (5, 10, 15):
        path = checkpoint_dir(tmp_path, step)
        path.mkdir()
        (path / STATE_FILE).write_text(json.dumps({"step": step}))
    checkpoint_dir(tmp_path, 20).mkdir()  # interrupted while saving: no state file
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10, 15]
    assert prune_checkpoints(tmp_path, keep=2) == [checkpoint_dir(tmp_path, 5)]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 15]
