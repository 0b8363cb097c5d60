"""The pack's V3 extension: the list of node classes ComfyUI registers."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .color import ColorCorrect
from .example_inputs import install_example_inputs
from .folders import register_folders
from .gtasr_loader import LoadModel as GTASRLoadModel
from .gtasr_upscale import Upscale as GTASRUpscale
from .inspect_artifacts import InspectArtifacts
from .op4ksr_loaders import LoadF16VAE, LoadModel
from .op4ksr_patch import ApplyRFR, EmptyConditioning
from .op4ksr_upscale import Upscale as OP4KSRUpscale
from .renames import RENAMES, register_renames

NODES: list[type[io.ComfyNode]] = [
    ColorCorrect,
    ApplyRFR,
    EmptyConditioning,
    LoadF16VAE,
    LoadModel,
    OP4KSRUpscale,
    GTASRLoadModel,
    GTASRUpscale,
    InspectArtifacts,
]


class SR4KExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_folders()
        install_example_inputs()  # the templates' LoadImage files, when absent from the input folder
        await register_renames(
            RENAMES, NODES
        )  # a no-op on ComfyUI versions without node replacement (0.3.75)

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.3.75 never calls on_load; the loaders' schemas list the pack folders, so register them here
        # too (idempotent). Without it the pack fails to import unless extra_model_paths.yaml names 'gtasr'.
        register_folders()
        install_example_inputs()  # here too for the same reason; never overwrites, so a second call is a no-op
        return list(NODES)
