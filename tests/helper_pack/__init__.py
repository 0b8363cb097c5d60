"""Test-only ComfyUI pack, whitelisted only by the test server (never shipped to users).

FLUX text encoders cannot be shrunk (ComfyUI builds T5-XXL from a fixed config), so server tests of
text-to-image graphs take their conditioning from this node instead of ``DualCLIPLoader``.
"""

from __future__ import annotations

import torch
from comfy_api.latest import ComfyExtension, io


class ZeroFluxConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4KTest_ZeroFluxConditioning",
            category="sr4k/testing",
            description="Zero FLUX conditioning of a given context width (tests only).",
            inputs=[
                io.Int.Input("context_dim", default=4096, min=1, max=8192, tooltip="T5 width of the model."),
                io.Int.Input("pooled_dim", default=768, min=1, max=4096, tooltip="CLIP pooled width."),
                io.Int.Input("tokens", default=4, min=1, max=512, tooltip="Number of text tokens."),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, context_dim: int, pooled_dim: int, tokens: int) -> io.NodeOutput:
        cond = torch.zeros(1, tokens, context_dim)
        return io.NodeOutput([[cond, {"pooled_output": torch.zeros(1, pooled_dim), "guidance": 3.5}]])


class MaskAsImage(io.ComfyNode):
    """A 1-channel IMAGE ([B, H, W, 1]), as some third-party nodes emit, to test channel checks."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4KTest_MaskAsImage",
            category="sr4k/testing",
            inputs=[io.Mask.Input("mask")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, mask: torch.Tensor) -> io.NodeOutput:
        return io.NodeOutput(mask[..., None])


class EmptyImageBatch(io.ComfyNode):
    """An IMAGE batch with zero images, to test empty-batch checks."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4KTest_EmptyImageBatch",
            category="sr4k/testing",
            inputs=[io.Image.Input("image")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, image: torch.Tensor) -> io.NodeOutput:
        return io.NodeOutput(image[:0])


class NonFluxModel(io.ComfyNode):
    """A MODEL that is not FLUX (a ModelPatcher around a plain module), to test model-kind checks."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4KTest_NonFluxModel", category="sr4k/testing", outputs=[io.Model.Output()]
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        import comfy.model_patcher

        cpu = torch.device("cpu")
        return io.NodeOutput(comfy.model_patcher.ModelPatcher(torch.nn.Linear(2, 2), cpu, cpu))


# Renames registered through the pack's own code (tests/server/test_node_replace.py): an identity rename with one
# renamed widget input, and one across a seed widget whose saved workflows carry a control_after_generate value.
TEST_RENAMES = (
    ("SR4K_ColourCorrect", "SR4K_ColorCorrect", (("strength", "amount"),)),
    ("GTASR_UpscaleLegacy", "GTASR_Upscale", ()),
)


class HelperExtension(ComfyExtension):
    async def on_load(self) -> None:  # called by ComfyUI versions with node replacement (0.33); not by 0.3.75
        from sr4k.nodes.extension import NODES
        from sr4k.nodes.renames import Rename, register_renames

        await register_renames(
            [Rename(old, new, "0.1.0", inputs=ins) for old, new, ins in TEST_RENAMES], NODES
        )

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [ZeroFluxConditioning, MaskAsImage, EmptyImageBatch, NonFluxModel]


async def comfy_entrypoint() -> HelperExtension:
    return HelperExtension()
