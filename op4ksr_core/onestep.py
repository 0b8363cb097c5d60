"""The one-step SR update and its input/output geometry (pure functions).

OP4KSR runs the FLUX transformer once: the LR image is bicubic-upsampled to the target size,
encoded by the F16 VAE, and one velocity prediction at time ``t*`` turns it into the HR latent,

    x_{t*} = input(z_LR, t*),        x0 = x_{t*} - t* . v(x_{t*}, t*)        (rectified flow)

which is exactly one Euler step on the sigmas ``[t*, 0]``, so ComfyUI's own sampler runs it.
The paper does not state how the LR latent enters the model nor t* (docs/op4ksr.md §2.1, §11); the two
documented candidates are options of :class:`OneStepConfig`:

``direct`` (default) ``x_{t*} = z_LR``: the LR latent itself stands at t*, as OSEDiff, OMGSR-F and HYPIR
                    feed it (docs/op4ksr.md Appendix D); ComfyUI's sampler builds it with the noise set to the
                    latent itself.
``flow``            ``x_{t*} = (1 - t*) . z_LR``: the noise-free point of the rectified-flow path
                    ``x_t = (1 - t) x0 + t eps`` with ``eps = 0``; this is what ComfyUI's sampler
                    builds with added noise disabled, so core nodes reproduce it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange

from ..srkit.sizing import (
    padding_to_multiple,
    target_size,  # re-exported: OP4KSR's output geometry
)

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_TARGET_LONG_SIDE",
    "DEFAULT_T_STAR",
    "INPUT_MODES",
    "InputMode",
    "OneStepConfig",
    "one_step_input",
    "one_step_x0",
    "pack_latents",
    "pad_for_crop",
    "target_size",
    "unpack_latents",
    "upsample_bicubic",
]


InputMode = Literal["flow", "direct"]
INPUT_MODES: tuple[str, ...] = ("flow", "direct")

DEFAULT_T_STAR = 0.5  # OMGSR-F's FLUX mid-timestep is sigma ~ 0.505 (docs/op4ksr.md Appendix D)
DEFAULT_GUIDANCE = 3.5  # FLUX.1-dev's usual guidance-embedding value (diffusers/ComfyUI default)
DEFAULT_INPUT_MODE: InputMode = "direct"
DEFAULT_TARGET_LONG_SIDE = 4096


@dataclass(frozen=True)
class OneStepConfig:
    """Hyperparameters of the one-step update.

    Attributes:
        t_star: the flow time (= ComfyUI sigma) of the single model call, in (0, 1]. Unknown in the
            paper; 0.5 by default (OMGSR-F's mid-timestep), calibrated per data by ``sr4k calibrate-tstar``.
        input_mode: how the LR latent becomes ``x_{t*}`` (see module docstring).
        guidance: FLUX-dev guidance-embedding value used when no conditioning carries one.
        empty_text_tokens: length of the all-zero text context used when no conditioning is given.
    """

    t_star: float = DEFAULT_T_STAR
    input_mode: InputMode = DEFAULT_INPUT_MODE
    guidance: float = DEFAULT_GUIDANCE
    empty_text_tokens: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.t_star <= 1.0:
            raise ValueError(f"t_star must be in (0, 1], got {self.t_star}; 0.5 is the default.")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode {self.input_mode!r} unknown; choose one of {INPUT_MODES}.")
        if self.input_mode == "flow" and self.t_star == 1.0:
            raise ValueError("input_mode 'flow' with t_star 1.0 discards the LR latent; use t_star < 1.")
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise ValueError(
                f"guidance must be a finite number >= 0, got {self.guidance}; 3.5 is the default."
            )
        if self.empty_text_tokens < 1:
            raise ValueError(f"empty_text_tokens must be >= 1, got {self.empty_text_tokens}.")


def one_step_input(z_lr: torch.Tensor, t_star: float, mode: InputMode) -> torch.Tensor:
    """``x_{t*}`` from the (model-space) LR latent ``z_lr`` ``[B, C, h, w]``."""
    if mode == "flow":
        return (1.0 - t_star) * z_lr
    if mode == "direct":
        return z_lr
    raise ValueError(f"input_mode {mode!r} unknown; choose one of {INPUT_MODES}.")


def one_step_x0(x_t: torch.Tensor, velocity: torch.Tensor, t_star: float) -> torch.Tensor:
    """Rectified-flow estimate of the clean latent: ``x0 = x_t - t* . v`` (one Euler step to 0)."""
    return x_t - t_star * velocity


def pad_for_crop(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``[B, C, H, W]`` on the bottom/right up to a multiple of ``multiple``, for cropping back after decoding.

    Returns the padded image and the original ``(H, W)`` to crop back to. One reflection (not zeros)
    so the padded border encodes like image content; replicate when a pad is not smaller than its side
    (GTASR's ``reflect_pad_to_multiple`` reflects repeatedly instead, as its release does).
    """
    h, w = image.shape[-2:]
    ph, pw = padding_to_multiple(h, w, multiple)
    if ph == 0 and pw == 0:
        return image, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode), (h, w)


def upsample_bicubic(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of ``[B, C, H, W]`` to ``size`` (antialiased only when shrinking).

    Not clamped: the small bicubic overshoot encodes fine, and this equals ComfyUI's ``ImageScale``
    (bicubic) exactly, so the exploded core-node workflow reproduces the upscale node.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False, antialias=shrink)


def pack_latents(z: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, h, w]`` -> tokens ``[B, (h/p)(w/p), C p p]`` in FLUX's (c, ph, pw) order."""
    h, w = z.shape[-2:]
    if h % patch or w % patch:
        raise ValueError(f"latent {h}x{w} is not a multiple of the patch size {patch}.")
    return rearrange(z, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=patch, pw=patch)


def unpack_latents(tokens: torch.Tensor, hw: tuple[int, int], patch: int) -> torch.Tensor:
    """Inverse of :func:`pack_latents`: tokens -> ``[B, C, h, w]`` for latent size ``hw``."""
    _, n, d = tokens.shape
    h, w = hw
    c = d // (patch * patch)
    if n != (h // patch) * (w // patch) or c * patch * patch != d:
        raise ValueError(f"{n} tokens of width {d} do not tile a {h}x{w} latent with patch {patch}.")
    return rearrange(tokens, "b (h w) (c ph pw) -> b c (h ph) (w pw)", h=h // patch, ph=patch, pw=patch)
