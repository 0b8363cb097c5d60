"""Every model read is weights-only and every loading error is specific (OP4KSR loaders, and the whole tree)."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import save_file

from comfy_harness import REPO
from sr4k.srkit.weights import CheckpointError

PACKAGES = (
    "cli",
    "gtasr_core",
    "nodes",
    "op4ksr_core",
    "srkit",
    "training",
    "benchmarks",
    "scripts",
    "tests",
)


class Trap:
    """Unpickling this runs ``os.makedirs(marker)``: the stand-in for a command hidden in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.makedirs, (str(self.marker),)


def booby_trapped(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"img_in.weight": torch.zeros(2, 2)}, "trap": Trap(marker)}, path)
    return path


@pytest.fixture(scope="module")
def loaders() -> ModuleType:
    from comfy_tree import import_comfy

    import_comfy()
    from sr4k.nodes import op4ksr_loaders

    return op4ksr_loaders


@pytest.mark.comfy
def test_a_booby_trapped_transformer_is_refused_even_where_comfyui_would_unpickle_it(
    loaders: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import comfy.utils

    # ComfyUI on torch < 2.4 (no add_safe_globals) loads pickles without weights_only unless asked to (0.3.75's
    # ALWAYS_SAFE_LOAD; newer ComfyUI has no such switch: raising=False sets it there, where nothing reads it).
    monkeypatch.setattr(comfy.utils, "ALWAYS_SAFE_LOAD", False, raising=False)
    marker = tmp_path / "the_trap_ran"
    path = booby_trapped(tmp_path / "flux_finetune.ckpt", marker)
    with pytest.raises(
        CheckpointError,
        match=r"flux_finetune.ckpt is a pickle that holds Python objects.*"
        r"weights_only=True",
    ):
        loaders.load_flux_model(str(path), "default")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="holds Python objects"):  # the LoRA file goes the same way
        loaders.read_weights(str(booby_trapped(tmp_path / "lora.pt", marker)))
    assert not marker.exists()


@pytest.mark.comfy
def test_pickles_unwrap_like_comfyui_and_safetensors_read_as_before(
    loaders: ModuleType, tmp_path: Path
) -> None:
    sd = {"img_in.weight": torch.arange(4.0).view(2, 2)}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "a.ckpt")
    torch.save({"model": sd}, tmp_path / "b.pth")
    save_file(sd, str(tmp_path / "c.safetensors"))
    for name in ("a.ckpt", "b.pth", "c.safetensors"):
        out = loaders.read_weights(str(tmp_path / name))
        assert out.keys() == sd.keys() and torch.equal(out["img_in.weight"], sd["img_in.weight"]), name


@pytest.mark.comfy
def test_layout_errors_are_reported_not_swallowed(loaders: ModuleType, tmp_path: Path) -> None:
    broken = {  # a diffusers FLUX whose first block lost its key projection
        "x_embedder.weight": torch.zeros(4, 4),
        "transformer_blocks.0.attn.to_q.weight": torch.zeros(4, 4),
        "transformer_blocks.0.attn.to_v.weight": torch.zeros(4, 4),
    }
    save_file(broken, str(tmp_path / "broken.safetensors"))
    # The registry refuses it before any conversion: the message names the file and what it resembles.
    with pytest.raises(
        ValueError,
        match=r"broken.safetensors is not a model sr4k loads: it looks like a FLUX "
        r"transformer in diffusers layout",
    ):
        loaders.load_flux_model(str(tmp_path / "broken.safetensors"), "default")
    save_file(
        {"img_in.weight": torch.zeros(2), "x_embedder.weight": torch.zeros(2)}, str(tmp_path / "mixed.sft")
    )
    with pytest.raises(
        ValueError, match=r"mixed.sft is not a model sr4k loads: it looks like a FLUX transformer"
    ):
        loaders.load_flux_model(str(tmp_path / "mixed.sft"), "default")


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            kw = {k.arg: k.value for k in node.keywords}
            flag = {"load": "weights_only", "load_torch_file": "safe_load"}.get(node.func.attr)
            is_torch_load = (
                node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            )
            if (is_torch_load or node.func.attr == "load_torch_file") and not (
                isinstance(kw.get(flag), ast.Constant) and kw[flag].value is True
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.func.attr} without {flag}=True")
        if isinstance(node, ast.ExceptHandler) and len(node.body) == 1 and isinstance(node.body[0], ast.Pass):
            names = (
                [n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)] if node.type else ["(bare)"]
            )
            if {"ValueError", "Exception", "BaseException", "(bare)"} & set(names):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: except {'/'.join(names)}: pass")
    return found


def test_no_unsafe_reader_and_no_swallowed_value_error_in_the_tree() -> None:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")] + list(REPO.glob("*.py"))
    assert len(files) > 50
    assert [v for p in files for v in _violations(p)] == []
