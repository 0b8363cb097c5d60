"""``OP4KSR_ApplyRFR`` (MODEL -> MODEL) and ``OP4KSR_EmptyConditioning``."""

from __future__ import annotations

from comfy_api.latest import io

from ..op4ksr_core.embedder import RFREmbedder
from ..op4ksr_core.onestep import OneStepConfig
from ..op4ksr_core.rfr import FLUX_TRAIN_GRID, GRID_MODES, RFR_MODES, SPATIAL_AXES, RFRConfig
from ..op4ksr_core.settings import AUTO, OP4KSRSettings
from ..op4ksr_core.settings import rfr_config as weights_rfr_config
from .flux_model import empty_flux_conditioning, flux_diffusion_model
from .op4ksr_settings import model_settings
from .rfr_sigma import set_sigma_wrapper


def rfr_config(
    mode: str, alpha: float, reference_tokens: int, settings: OP4KSRSettings | None = None
) -> RFRConfig:
    """The RFR widgets as a config; ``auto``: mode, alpha and reference grid from ``settings`` or the defaults."""
    if mode == AUTO:
        return weights_rfr_config(settings)
    return RFRConfig(
        mode=mode, alpha=alpha, reference_grid=(float(reference_tokens), float(reference_tokens))
    )


def check_text_axes(inner, config: RFRConfig) -> None:  # noqa: ANN001 - comfy.ldm.flux.model.Flux
    """Refuse the grid-reading RFR modes (ntk, yarn, dype) on FLUX-family models whose text tokens take
    positions on the row/column axes.

    ComfyUI 0.33+ records them in ``params.txt_ids_dims`` (LongCat-Image and Ovis: ``[1, 2]``, text ids
    0..T-1 on both spatial axes; FLUX.1: ``[]``, all zeros). Those modes read the token grid from the largest
    position on those axes (``embedder.grid_from_ids``), so there the prompt length would count as image
    size. 'scale' and 'none' do not read the grid and stay exact.
    """
    text_dims = sorted(set(getattr(getattr(inner, "params", None), "txt_ids_dims", None) or ()))
    spatial = [d for d in text_dims if d in SPATIAL_AXES]
    if config.mode in GRID_MODES and spatial:
        raise ValueError(
            f"rfr_mode '{config.mode}' cannot be used with this model: its text tokens take positions on the "
            f"RoPE row/column axes (txt_ids_dims={text_dims}, as in LongCat-Image or Ovis), so the image size "
            f"'{config.mode}' reads from the positions would include the prompt length. Use rfr_mode 'scale' "
            "(alpha sets the base directly) or 'none'."
        )


def apply_rfr(model, config: RFRConfig):  # noqa: ANN001, ANN201 - ComfyUI ModelPatcher in and out
    """Clone ``model`` and swap its positional embedder for an RFR one (the input stays untouched)."""
    inner = flux_diffusion_model(model)
    check_text_axes(inner, config)
    patched = model.clone()
    patched.add_object_patch(
        "diffusion_model.pe_embedder", RFREmbedder.from_module(inner.pe_embedder, config)
    )
    set_sigma_wrapper(patched, config.mode == "dype")  # only dype reads the sampling sigma
    return patched


def rfr_inputs() -> list:
    """The RFR widgets shared by ``OP4KSR_ApplyRFR`` and ``OP4KSR_LoadModel``."""
    return [
        io.Combo.Input(
            "rfr_mode",
            options=[AUTO, *RFR_MODES],
            default=AUTO,
            tooltip="RoPE base-frequency rescaling against periodic artifacts at 4K. auto: what the OP4KSR "
            "weights were trained with (mode, alpha, reference_tokens), else ntk. ntk: rescale each axis' "
            "base by how far the token grid exceeds the training grid. scale: multiply the base by "
            "alpha. none: stock FLUX RoPE. yarn: per-band YaRN ramps plus attention scale 1 + 0.1 ln s "
            "(training-free 4K for base FLUX). dype: YaRN that follows the sampling sigma (strong at high "
            "noise, stock RoPE near the end); for multi-step refines such as flux_refine_4k.",
        ),
        io.Float.Input(
            "alpha",
            default=1.0,
            min=0.01,
            max=100.0,
            step=0.01,
            tooltip="Base multiplier for rfr_mode 'scale' (theta' = alpha * 10000). Ignored by the other modes "
            "and by auto.",
        ),
        io.Int.Input(
            "reference_tokens",
            default=int(FLUX_TRAIN_GRID[0]),
            min=1,
            max=1024,
            tooltip="Tokens per side of the grid the model was trained at (FLUX.1: 1024 px / 16 px = 64). "
            "Used by 'ntk', 'yarn' and 'dype' (auto takes the weights' value).",
        ),
    ]


class ApplyRFR(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OP4KSR_ApplyRFR",
            display_name="OP4KSR Apply RoPE Frequency Rescaling",
            category="sr4k/op4ksr",
            description="Patches any FLUX model (UNETLoader, fp8, GGUF, LoRA stacks) with RoPE base-frequency "
            "rescaling (RFR), which suppresses periodic artifacts at 4K. Works in plain FLUX generation graphs "
            "too. The input model is not changed.",
            inputs=[io.Model.Input("model", tooltip="A FLUX.1 model."), *rfr_inputs()],
            outputs=[io.Model.Output(tooltip="The same model with the RFR positional embedder.")],
        )

    @classmethod
    def execute(cls, model, rfr_mode: str, alpha: float, reference_tokens: int) -> io.NodeOutput:  # noqa: ANN001
        return io.NodeOutput(
            apply_rfr(model, rfr_config(rfr_mode, alpha, reference_tokens, model_settings(model)))
        )


class EmptyConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OP4KSR_EmptyConditioning",
            display_name="OP4KSR Empty Conditioning",
            category="sr4k/op4ksr",
            description="All-zero FLUX conditioning sized for the connected model: what OP4KSR uses when no "
            "prompt is given, without loading the T5/CLIP text encoders.",
            inputs=[
                io.Model.Input("model", tooltip="The FLUX model the conditioning is for (its text widths)."),
                io.Float.Input(
                    "guidance",
                    default=3.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    tooltip="FLUX-dev guidance embedding value.",
                ),
            ],
            outputs=[io.Conditioning.Output(tooltip="Zero text conditioning.")],
        )

    @classmethod
    def execute(cls, model, guidance: float) -> io.NodeOutput:  # noqa: ANN001
        return io.NodeOutput(
            empty_flux_conditioning(model, tokens=OneStepConfig().empty_text_tokens, guidance=guidance)
        )
