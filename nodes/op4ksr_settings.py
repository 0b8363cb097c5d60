"""OP4KSR settings on a ComfyUI ``MODEL``: read from the weights' ``sr4k.op4ksr`` metadata, carried downstream.

``OP4KSR_LoadModel`` reads the metadata of the LoRA and/or the transformer file and stores it in the MODEL's
``model_options`` (copied by every ``clone()``, so it survives ``OP4KSR_ApplyRFR``, LoRA loaders and the
sampler's patches). ``OP4KSR_ApplyRFR`` and ``OP4KSR_Upscale`` resolve their ``auto`` widgets from it
(``op4ksr_core.settings.resolve``: explicit widget > metadata > defaults). A MODEL without it is base FLUX as
far as we can tell, and ``OP4KSR_Upscale`` says so (:data:`BASE_MODEL_WARNING`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..op4ksr_core.settings import (
    AUTO,
    METADATA_KEY,
    OP4KSRSettings,
    auto_decode_mode,
    read_settings,
)
from ..op4ksr_core.vae.config import DECODE_MODES

log = logging.getLogger(__name__)

TRAINING_GUIDE = "https://github.com/sr4k/sr4k/blob/main/docs/training_op4ksr.md"
BASE_MODEL_WARNING = (
    "This model carries no OP4KSR settings, so it is most likely plain FLUX.1: the result will be soft "
    "(one step from a blurry start, with no prompt). For sharp 4K, load OP4KSR weights in OP4KSR Load Model "
    f"(a LoRA or fine-tune made with the sr4k trainer; how to make one: {TRAINING_GUIDE}), "
    "or use the zero-shot refine workflow flux_refine_4k (Browse Templates > sr4k), which works with plain FLUX.1."
)
DECODE_OPTIONS: tuple[str, ...] = (AUTO, *DECODE_MODES)


def model_settings(model: Any) -> OP4KSRSettings | None:
    """The weights' settings a MODEL carries, or None (base FLUX, or loaded without OP4KSR Load Model)."""
    raw = getattr(model, "model_options", {}).get(METADATA_KEY)
    return None if raw is None else OP4KSRSettings(**raw)


def with_settings(model: Any, settings: OP4KSRSettings | None) -> Any:
    """``model`` (a ModelPatcher, changed in place) carrying ``settings``; None leaves it without any."""
    if settings is not None:
        model.model_options[METADATA_KEY] = settings.known()  # a plain dict: deep-copied by clone()
    return model


def vae_decode_mode(widget: str, vae_path: str, sd: dict, *others: OP4KSRSettings | None) -> str:
    """``decode_mode`` for a VAE file: the widget unless ``auto``, then the VAE file's metadata, then ``others``
    (the transformer weights' settings), then the default for the file's key layout."""
    if widget != AUTO:
        return widget
    mode = auto_decode_mode(sd, read_settings(vae_path), *others)
    log.info("sr4k: decode_mode auto = %s for %s", mode, vae_path)
    return mode
