"""Hand each FLUX call's sigma to an RFR embedder (``dype`` mode) through a ComfyUI model wrapper.

ComfyUI's FLUX calls its positional embedder with the ids only (``comfy/ldm/flux/model.py``
``forward_orig``); the sampling sigma lives in ``transformer_options["sigmas"]`` (set by
``comfy/samplers.py`` for every model call). A ``DIFFUSION_MODEL`` wrapper sees both the options and the
diffusion model (``executor.class_obj``), so it sets the embedder's ``sigma`` for the duration of the call.
The wrapper lives in the MODEL's options, so clones carry it and the input MODEL stays untouched.
"""

from __future__ import annotations

from typing import Any

import comfy.patcher_extension
import torch

WRAPPER_KEY = "sr4k_rfr_sigma"


def _call_sigma(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The sigmas of this call: ``transformer_options["sigmas"]``, else the timestep (FLUX: t = sigma)."""
    options = kwargs.get("transformer_options")
    if options is None:
        options = next((a for a in args if isinstance(a, dict) and "sigmas" in a), None)
    sigmas = options.get("sigmas") if isinstance(options, dict) else None
    if sigmas is None:
        sigmas = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    return sigmas if isinstance(sigmas, torch.Tensor) and sigmas.numel() else None


def sigma_wrapper(executor: Any, *args: Any, **kwargs: Any) -> Any:
    """DIFFUSION_MODEL wrapper: set ``pe_embedder.sigma`` from the call, run the model, restore it."""
    embedder = getattr(getattr(executor, "class_obj", None), "pe_embedder", None)
    sigmas = _call_sigma(args, kwargs)
    if embedder is None or not hasattr(embedder, "sigma") or sigmas is None:
        return executor(*args, **kwargs)
    previous = embedder.sigma
    embedder.sigma = float(sigmas.reshape(-1)[0])  # cond and uncond of one step share the sigma
    try:
        return executor(*args, **kwargs)
    finally:
        embedder.sigma = previous


def set_sigma_wrapper(model: Any, enabled: bool) -> None:
    """Add (``enabled``) or remove :func:`sigma_wrapper` on a cloned ModelPatcher; never twice."""
    kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    model.remove_wrappers_with_key(kind, WRAPPER_KEY)
    if enabled:
        model.add_wrapper_with_key(kind, WRAPPER_KEY, sigma_wrapper)
