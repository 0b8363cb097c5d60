"""``SR4K_InspectArtifacts``: periodicity and tile-seam scores of an image, plus a heatmap of where they are.

Artists use it to compare a patch-free upscale with a tiled one. The measures, the heatmap and the report are
pure functions in :mod:`srkit.artifacts`; this node adds ComfyUI's device, progress bar and previews.
"""

from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io, ui

from ..srkit.artifacts import STAGES_PER_IMAGE, check_size, inspect_one, report
from ..srkit.images import check_image
from ..srkit.periodicity import DEFAULT_PERIOD_PX
from .common import from_comfy_image, to_comfy_image
from .runtime import check_cancel, is_oom

log = logging.getLogger(__name__)


class InspectArtifacts(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SR4K_InspectArtifacts",
            display_name="SR4K Inspect Artifacts",
            category="sr4k",
            description="Measures periodic grid artifacts and tile seams in an image and shows where they are: "
            "red = a period_px grid repeats, cyan = straight tile seams. Put one after a patch-free and one after a "
            "tiled upscale to compare. The scores appear on the node (periodicity first).",
            inputs=[
                io.Image.Input(
                    "image",
                    tooltip="The image(s) to inspect, usually an upscaled result. RGBA is "
                    "inspected on its RGB channels.",
                ),
                io.Int.Input(
                    "period_px",
                    default=DEFAULT_PERIOD_PX,
                    min=4,
                    max=512,
                    step=1,
                    tooltip="Period of the grid artifact to look for, in pixels. 32 = one OP4KSR token "
                    "(16x VAE x 2x2 patch); 16 for a standard 8x VAE FLUX. The image's short side must "
                    "be at least 5x this.",
                ),
                io.Int.Input(
                    "tile_stride_px",
                    default=0,
                    min=0,
                    max=8192,
                    step=8,
                    optional=True,
                    tooltip="Tile stride of the upscaler that made the image (tile size minus overlap), "
                    "if known. 0 searches strides from 32 px up.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "heatmap",
                    display_name="heatmap",
                    tooltip="The image in grey with periodic "
                    "artifacts in red and tile seams in cyan, one per input image.",
                ),
                io.Float.Output(
                    "periodicity",
                    display_name="periodicity",
                    tooltip="Strength of the period_px "
                    "grid, batch mean: 0 = none, 1 = a pure periodic pattern.",
                ),
                io.Float.Output(
                    "seam_score",
                    display_name="seam_score",
                    tooltip="Tile-seam strength, batch mean: about 1 = no seams, above 1.5 = visible seams.",
                ),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image, period_px: int, tile_stride_px: int = 0) -> io.NodeOutput:  # noqa: ANN001
        batch = from_comfy_image(image)
        check_image(batch, purpose="the inspector")
        batch = batch[:, :3].float()
        check_size(batch.shape[-2], batch.shape[-1], period_px, tile_stride_px)
        total = STAGES_PER_IMAGE * batch.shape[0]
        pbar = comfy.utils.ProgressBar(total)
        device = mm.get_torch_device()
        results, heats = [], []
        for i, img in enumerate(batch):

            def done(stage: int, i: int = i) -> None:
                pbar.update_absolute(i * STAGES_PER_IMAGE + stage, total)
                check_cancel()  # newer ComfyUI throttles progress updates, and the cancel check with them

            oom = False
            try:
                found, heat = inspect_one(img.to(device), period_px, tile_stride_px, done)
            except Exception as e:
                if not is_oom(e):
                    raise
                oom = (
                    True  # retried below, outside the except block, so the failed attempt's tensors are freed
                )
            if oom:
                # The FFT windows of a 4K map are large; the CPU is slower but has the memory.
                log.warning(
                    "SR4K Inspect Artifacts: out of memory on %s, measuring on the CPU instead", device
                )
                mm.soft_empty_cache()
                found, heat = inspect_one(img.cpu(), period_px, tile_stride_px, done)
            results.append(found)
            heats.append(heat.cpu())
        heatmap = to_comfy_image(torch.stack(heats))
        text = report(results, period_px)
        mean_p = sum(r.periodicity for r in results) / len(results)
        mean_s = sum(r.seams for r in results) / len(results)
        shown = {**ui.PreviewImage(heatmap, cls=cls).as_dict(), **ui.PreviewText(text).as_dict()}
        return io.NodeOutput(heatmap, mean_p, mean_s, ui=shown)
