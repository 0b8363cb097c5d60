"""``OP4KSR_LoadF16VAE`` and ``OP4KSR_LoadModel``."""

from __future__ import annotations

from collections.abc import Mapping

import comfy.sd
import comfy.utils
import torch
from comfy_api.latest import io

from ..op4ksr_core.flux.keys import diffusers_to_bfl, strip_prefix
from ..op4ksr_core.settings import AUTO, OP4KSRSettings, files_settings
from ..op4ksr_core.vae.loader import load_f16_vae
from ..srkit.registry import CheckpointError, detect
from ..srkit.weights import extract_state_dict, load_checkpoint, load_state_dict
from .f16_vae import make_comfy_vae
from .flux_model import flux_diffusion_model
from .folders import file_list, full_path
from .op4ksr_patch import apply_rfr, rfr_config, rfr_inputs
from .op4ksr_settings import DECODE_OPTIONS, vae_decode_mode, with_settings

WEIGHT_DTYPES: dict[str, dict] = {
    "default": {},
    "fp8_e4m3fn": {"dtype": torch.float8_e4m3fn},
    "fp8_e4m3fn_fast": {"dtype": torch.float8_e4m3fn, "fp8_optimizations": True},
    "fp8_e5m2": {"dtype": torch.float8_e5m2},
}


def load_vae_file(vae_name: str, decode_mode: str, *settings: OP4KSRSettings | None) -> comfy.sd.VAE:
    """The F16 VAE of a ``models/vae`` file; ``decode_mode`` ``auto`` resolves as :func:`vae_decode_mode` says."""
    path = full_path("vae", vae_name)
    sd = load_state_dict(path)
    return make_comfy_vae(load_f16_vae(sd, vae_decode_mode(decode_mode, path, sd, *settings)))


def decode_mode_input(with_weights: bool) -> io.Combo.Input:
    """The decode_mode widget; ``with_weights``: the node also reads the OP4KSR weights' settings."""
    source = (
        "the VAE file's sr4k settings, then the OP4KSR weights'"
        if with_weights
        else "the VAE file's sr4k settings"
    )
    return io.Combo.Input(
        "decode_mode",
        options=list(DECODE_OPTIONS),
        default=AUTO,
        tooltip=f"auto: {source}, else aligned for the raw FLUX ae.safetensors and partitioned for a "
        "diffusers-format F16 VAE (for FLUX.1-dev's own diffusers-format VAE pick aligned). partitioned: the "
        "Diffusion-4K F16 decode (SC-VAE, UltraFlux, sr4k-trained decoders). aligned: plain nearest x2 before "
        "the last conv (raw FLUX VAE).",
    )


class LoadF16VAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OP4KSR_LoadF16VAE",
            display_name="OP4KSR Load F16 VAE",
            category="sr4k/op4ksr",
            description="Loads FLUX VAE weights (ae.safetensors, or a diffusers-format F16 VAE) as a 16x "
            "VAE: a 4096x4096 image becomes a 256x256 latent. Works with core VAE Encode/Decode.",
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=file_list("vae"),
                    tooltip="A FLUX.1 VAE file from models/vae (BFL or diffusers key layout).",
                ),
                decode_mode_input(with_weights=False),
            ],
            outputs=[io.Vae.Output(tooltip="The F16 VAE.")],
        )

    @classmethod
    def execute(cls, vae_name: str, decode_mode: str) -> io.NodeOutput:
        return io.NodeOutput(load_vae_file(vae_name, decode_mode))


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """A model file's tensors, read safely whatever the torch / ComfyUI versions.

    ``.safetensors`` / ``.sft`` through ComfyUI's reader (memory-mapped); every pickle (``.ckpt``, ``.pt``,
    ``.pth``, ``.bin``) weights-only through ``srkit.weights``, which refuses one holding Python objects (its
    code would run while unpickling) with an error naming the file and the fix. ComfyUI on torch < 2.4 would
    unpickle such a file unsafely, even with ``safe_load`` unset. Wrappers are unwrapped as ComfyUI does: a
    ``state_dict`` entry, or the one entry of a one-entry mapping.
    """
    if path.lower().endswith((".safetensors", ".sft")):
        return comfy.utils.load_torch_file(path, safe_load=True)
    raw = load_checkpoint(path)
    if isinstance(raw.get("state_dict"), Mapping):
        raw = dict(raw["state_dict"])
    elif len(raw) == 1 and isinstance(only := next(iter(raw.values())), Mapping):
        raw = dict(only)
    return extract_state_dict(raw, source=path)


def load_flux_model(path: str, weight_dtype: str, disable_dynamic: bool = False):  # noqa: ANN201 - ModelPatcher
    """A FLUX transformer file (BFL/ComfyUI or diffusers layout) as a ComfyUI ``MODEL``.

    ComfyUI builds the model the way core ``UNETLoader`` does (``comfy.sd.load_diffusion_model``: its own
    FLUX class, fp8 options, offloading, the file's quantization metadata), so it is the same kind of
    ``MODEL``; on versions that have it (0.33+), ``cached_patcher_init`` is set as core sets it, the factory
    dynamic VRAM, TorchCompileModel and multi-GPU nodes rebuild the model from (called with
    ``disable_dynamic=True`` for a non-dynamic copy). BFL files name core's own loader; diffusers files,
    converted to BFL keys here, name this function. The registry only checks what the file is and its
    layout, so a GTASR file, a VAE or a LoRA gets our error naming it.
    """
    options = dict(WEIGHT_DTYPES[weight_dtype])
    safetensors = path.lower().endswith((".safetensors", ".sft"))
    if safetensors:
        sd, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    else:  # pickles only weights-only (read_weights), never through a loader that might unpickle objects
        sd, metadata = read_weights(path), None
    found = detect(sd, path)
    if found.arch != "flux_transformer":
        raise CheckpointError(
            f"{path} holds {found.arch} weights, not a FLUX.1 transformer; pick a file from models/diffusion_models "
            "(e.g. flux1-dev.safetensors or an OP4KSR fine-tune)."
        )
    # What core's loader records; pickles and diffusers files are re-read by this function (weights-only).
    factory = (
        (comfy.sd.load_diffusion_model, (path, options))
        if safetensors
        else (load_flux_model, (path, weight_dtype))
    )
    if found.layout == "diffusers":
        if metadata and "_quantization_metadata" in metadata:
            raise CheckpointError(
                f"{path} is a diffusers-layout FLUX file with quantization metadata, whose layer names would not "
                "match after key conversion; use the BFL/ComfyUI-layout file of the same weights instead."
            )
        sd = diffusers_to_bfl(strip_prefix(sd, found.prefix) if found.prefix else sd)
        factory = (load_flux_model, (path, weight_dtype))
    extra = {"disable_dynamic": True} if disable_dynamic else {}  # only passed by versions that have it
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options, metadata=metadata, **extra)
    if model is None:
        raise ValueError(
            f"{path} is not a diffusion-model file ComfyUI recognises; OP4KSR needs a FLUX.1 transformer "
            "(models/diffusion_models, e.g. flux1-dev.safetensors or an OP4KSR fine-tune)."
        )
    if hasattr(model, "cached_patcher_init"):  # ComfyUI 0.33+
        model.cached_patcher_init = factory
    flux_diffusion_model(model)  # a non-FLUX model (SD, SDXL, ...) gets a clear error
    return model


class LoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        loras = ["none", *file_list("loras")]
        return io.Schema(
            node_id="OP4KSR_LoadModel",
            display_name="OP4KSR Load Model",
            category="sr4k/op4ksr",
            description="Loads an OP4KSR model: a FLUX.1 transformer (full fine-tune, or the base model plus an "
            "OP4KSR LoRA), with RoPE frequency rescaling applied, and the F16 VAE.",
            inputs=[
                io.Combo.Input(
                    "unet_name",
                    options=file_list("diffusion_models"),
                    tooltip="FLUX.1 transformer from models/diffusion_models (BFL or diffusers layout).",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip="fp8 halves the transformer's memory at a small quality cost.",
                ),
                io.Combo.Input(
                    "lora_name",
                    options=loras,
                    default="none",
                    tooltip="OP4KSR LoRA from models/loras, or none for a full fine-tune. Load OP4KSR "
                    "LoRAs here (not with a core LoRA loader) so their settings reach the auto widgets.",
                ),
                io.Float.Input(
                    "lora_strength",
                    default=1.0,
                    min=-10.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Strength of the LoRA (1 = as trained).",
                ),
                io.Combo.Input(
                    "vae_name", options=file_list("vae"), tooltip="FLUX.1 VAE weights for the F16 VAE."
                ),
                decode_mode_input(with_weights=True),
                *rfr_inputs(),
            ],
            outputs=[
                io.Model.Output(tooltip="The OP4KSR transformer."),
                io.Vae.Output(tooltip="The F16 VAE."),
            ],
        )

    @classmethod
    def execute(
        cls,
        unet_name: str,
        weight_dtype: str,
        lora_name: str,
        lora_strength: float,
        vae_name: str,
        decode_mode: str,
        rfr_mode: str,
        alpha: float,
        reference_tokens: int,
    ) -> io.NodeOutput:
        unet_path = full_path("diffusion_models", unet_name)
        lora_path = full_path("loras", lora_name) if lora_name != "none" else None
        # The weights' sr4k.op4ksr settings (LoRA first, then the transformer file); they travel with the MODEL.
        settings = files_settings(lora_path, unet_path)
        config = rfr_config(rfr_mode, alpha, reference_tokens, settings)  # validate before the slow loads
        model = load_flux_model(unet_path, weight_dtype)
        if lora_path is not None:
            lora = read_weights(lora_path)
            model, _ = comfy.sd.load_lora_for_models(model, None, lora, lora_strength, 0.0)
        model = with_settings(model, settings)
        return io.NodeOutput(apply_rfr(model, config), load_vae_file(vae_name, decode_mode, settings))
