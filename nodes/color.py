"""``SR4K_ColorCorrect``: transfer the reference's colour onto an upscaled image."""

from __future__ import annotations

from comfy_api.latest import io

from ..srkit.color import METHODS, color_correct
from .common import from_comfy_image, to_comfy_image


class ColorCorrect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4K_ColorCorrect",
            display_name="SR4K Color Correct",
            category="sr4k",
            description=(
                "Fixes the colour shift of diffusion upscalers: transfers the colour of a reference image "
                "(usually the low-res input) onto the upscaled image, at the upscaled size."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The upscaled image(s) to correct. RGBA keeps its alpha."),
                io.Image.Input(
                    "reference",
                    tooltip="Image(s) with the right colours, usually the low-res input. Any size; "
                    "one reference for the whole batch or one per image.",
                ),
                io.Combo.Input(
                    "method",
                    options=list(METHODS),
                    default="wavelet",
                    tooltip="wavelet: keep the upscaled detail, take low frequencies from the reference "
                    "(best default). adain: match per-channel mean/contrast. lab: match colour statistics in "
                    "a perceptual Lab space (safe on saturated blues). none: pass through.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="0 keeps the upscaled image, 1 applies the full correction.",
                ),
            ],
            outputs=[io.Image.Output(tooltip="The colour-corrected image, same size as the input image.")],
        )

    @classmethod
    def execute(cls, image, reference, method: str, strength: float) -> io.NodeOutput:  # noqa: ANN001
        out = color_correct(from_comfy_image(image), from_comfy_image(reference), method, strength)
        return io.NodeOutput(to_comfy_image(out))
