"""Helpers around a ComfyUI FLUX ``MODEL`` (a ``ModelPatcher``): checks, empty conditioning, one step."""

from __future__ import annotations

from typing import Any

import comfy.model_base
import comfy.sample
import comfy.samplers
import torch

from ..op4ksr_core.onestep import OneStepConfig


def flux_diffusion_model(model: Any) -> Any:
    """The ``comfy.ldm.flux`` module of a FLUX ``MODEL``, or a clear error for anything else."""
    base = getattr(model, "model", None)
    inner = getattr(base, "diffusion_model", None)
    embedder = getattr(inner, "pe_embedder", None)
    if not isinstance(base, comfy.model_base.Flux) or embedder is None or not hasattr(embedder, "axes_dim"):
        kind = type(base).__name__ if base is not None else type(model).__name__
        raise ValueError(
            f"this node needs a FLUX.1 MODEL (from UNETLoader, a checkpoint loader, GGUF or OP4KSR_LoadModel); "
            f"got a {kind} model. Connect a FLUX model."
        )
    return inner


def empty_flux_conditioning(model: Any, tokens: int, guidance: float) -> list:
    """All-zero FLUX conditioning with the model's own text and pooled widths.

    Saves loading the T5/CLIP encoders (~10 GB) just to encode an empty prompt; OP4KSR's text use is
    unknown in the paper, and the trainer uses the same zero context (op4ksr_core.onestep).
    """
    params = flux_diffusion_model(model).params
    cond = torch.zeros(1, tokens, params.context_in_dim)
    extra: dict[str, Any] = {"guidance": guidance}
    if params.vec_in_dim is not None:
        extra["pooled_output"] = torch.zeros(1, params.vec_in_dim)
    return [[cond, extra]]


def with_guidance_default(conditioning: list, guidance: float) -> list:
    """``conditioning`` whose entries without a ``guidance`` value get ``guidance`` (the weights' own).

    ComfyUI's FLUX falls back to 3.5 when an entry has none, whatever the weights were trained with; an entry
    that has one (a FluxGuidance node upstream) keeps it. The input list is not modified.
    """
    return [[cond, {"guidance": guidance, **extra}] for cond, extra in conditioning]


def one_step_sample(model: Any, latent: torch.Tensor, positive: list, config: OneStepConfig) -> torch.Tensor:
    """``x0 = x_{t*} - t* v`` through ComfyUI's sampler: one Euler step on sigmas ``[t*, 0]``, cfg 1.

    ``latent`` is the raw VAE latent ``[B, C, h, w]``; the result is too. ComfyUI starts from
    ``sigma*noise + (1 - sigma)*latent`` for flow models, so zero noise gives the ``flow`` input
    and noise equal to the (model-space) latent gives the ``direct`` input.
    """
    sigmas = torch.tensor([config.t_star, 0.0])
    if config.input_mode == "flow":
        noise = torch.zeros_like(latent)
    else:
        noise = model.model.process_latent_in(latent.clone())
    sampler = comfy.samplers.sampler_object("euler")
    return comfy.sample.sample_custom(
        model, noise, 1.0, sampler, sigmas, positive, positive, latent, disable_pbar=True, seed=0
    )
