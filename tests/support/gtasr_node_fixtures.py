"""Fixtures of the GTASR node tests, shared by several test files (the tiny GTASR in the server or in-process)."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from comfy_harness import ComfyServer
from gtasr_support import lowres, tiny_gtasr_files
from sr4k.gtasr_core import GTASRNet, load_gtasr

__all__ = ["SEAM_LR", "gtasr_patcher", "models", "net", "nodes"]

SEAM_LR = 96  # > tile 64: forced tiling gives 2 x 2 tiles (starts 0 and 32)


@pytest.fixture(scope="module")
def models(comfy_server: ComfyServer) -> ComfyServer:
    """The tiny GTASR as GTASR_final_phase.pth (BasicSR) and as safetensors; bad files beside them."""
    folder = comfy_server.models / "gtasr"
    pth, st, _ = tiny_gtasr_files(comfy_server.base / "gtasr_src")
    for name, src in (("GTASR_final_phase.pth", pth), ("tiny_gtasr.safetensors", st)):
        (folder / name).write_bytes(src.read_bytes())
    data = pth.read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 2])
    flux_keys = ("img_in.weight", "double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight")
    save_file({k: torch.zeros(4, 4) for k in flux_keys}, str(folder / "flux1-dev.safetensors"))
    sd = load_file(str(st))  # one key missing, one unexpected
    sd["model.extra.weight"] = sd.pop("model.dec.16x16_block0.norm1.bias")
    save_file(sd, str(folder / "wrong_keys.safetensors"))
    Image.fromarray(lowres(0)).save(comfy_server.input_dir / "sr4k_example_lowres.png")
    Image.fromarray(lowres(1, SEAM_LR, SEAM_LR)).save(comfy_server.input_dir / "sr4k_gtasr_seam.png")
    return comfy_server


@pytest.fixture(scope="module")
def net(models: ComfyServer) -> GTASRNet:
    """The network the loader must produce (params_ema of the .pth), loaded in this process."""
    return load_gtasr(models.models / "gtasr" / "GTASR_final_phase.pth")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """``sr4k.nodes.gtasr`` imported in this process on the test ComfyUI tree, with the tiny GTASR installed."""
    from comfy_tree import import_comfy

    import_comfy()
    import folder_paths

    from sr4k.nodes import gtasr
    from sr4k.nodes.folders import register_folders

    register_folders()
    folder = tmp_path_factory.mktemp("gtasr_models")
    pth, _, _ = tiny_gtasr_files(folder)
    paths, exts = folder_paths.folder_names_and_paths["gtasr"]
    folder_paths.folder_names_and_paths["gtasr"] = ([str(folder), *paths], exts)
    return gtasr


def gtasr_patcher(nodes: ModuleType, precision: str = "fp32") -> object:
    """The tiny GTASR loaded by ``GTASR_LoadModel`` in this process (a ComfyUI ModelPatcher)."""
    return nodes.LoadModel.execute("tiny_gtasr.pth", precision).result[0]
