"""One OP4KSR training step's maths: the one-step model as a module, frozen encoding, and the losses.

The forward is exactly inference's (``op4ksr_core.headless``): LR -> bicubic to the HR size ->
F16 encode (posterior mean) -> model latent ``z`` -> ``x_{t*} = input(z, t*)`` -> ``x0 = x_{t*} - t* v``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...op4ksr_core.flux.forward import velocity
from ...op4ksr_core.onestep import (
    OneStepConfig,
    one_step_input,
    one_step_x0,
    upsample_bicubic,
)
from ...op4ksr_core.vae import F16VAE
from ...srkit.periodicity import periodicity_loss
from .config import OP4KSRTrainConfig

log = logging.getLogger(__name__)

__all__ = [
    "OneStepSR",
    "Perceptual",
    "compute_losses",
    "encode_pair",
    "make_perceptual",
]


Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(sr, hr)`` both ``[B, 3, H, W]`` in [-1, 1] -> distance per sample ``[B]`` (or a scalar), e.g. LPIPS."""


class OneStepSR(nn.Module):
    """``z_lr -> x0``: the transformer wrapped so accelerate/DDP prepares one module with a plain forward."""

    def __init__(self, transformer: nn.Module, config: OneStepConfig) -> None:
        super().__init__()
        self.transformer = transformer
        self.config = config

    def forward(self, z_lr: torch.Tensor, placement: torch.Tensor | None = None) -> torch.Tensor:
        """Model-space LR latent ``[B, C, h, w]`` -> clean-latent estimate ``[B, C, h, w]`` (float32).

        ``placement`` ``[B, 4]`` (tokens: y0, x0, canvas rows, cols; ``canvas``) puts each crop in its
        output canvas: ids ``origin + arange`` and RFR's base for the canvas grid. None: the crop is the canvas.
        """
        t = self.config.t_star
        x_t = one_step_input(z_lr, t, self.config.input_mode)
        if placement is None:
            return one_step_x0(x_t, velocity(self.transformer, x_t, t, self.config), t)
        rows = [tuple(int(v) for v in p) for p in placement.tolist()]
        # diffusers FLUX takes one set of ids per call: samples with different placements run one by one.
        groups = [slice(0, len(rows))] if len(set(rows)) == 1 else [slice(i, i + 1) for i in range(len(rows))]
        outs = [self._placed_velocity(x_t[g], t, rows[g.start]) for g in groups]
        return one_step_x0(x_t, torch.cat(outs), t)

    def _placed_velocity(self, x_t: torch.Tensor, t: float, place: tuple[int, ...]) -> torch.Tensor:
        y0, x0, canvas_rows, canvas_cols = place
        pos_embed = self.transformer.pos_embed
        if not hasattr(pos_embed, "grid_hw"):
            raise ValueError(
                "placing crops in a canvas needs the RFR position embedder (set_rfr) on the transformer"
            )
        pos_embed.grid_hw = (float(canvas_rows), float(canvas_cols))
        try:
            return velocity(self.transformer, x_t, t, self.config, origin=(y0, x0))
        finally:
            pos_embed.grid_hw = None


@torch.no_grad()
def encode_pair(vae: F16VAE, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Model latents of the bicubic-upsampled LR and of HR (images in [0, 1]; frozen VAE, posterior means)."""
    lr_up = upsample_bicubic(lr.float(), tuple(hr.shape[-2:]))

    def enc(x: torch.Tensor) -> torch.Tensor:
        return vae.to_model_latent(vae.encode((x * 2 - 1).to(vae.device)).float())

    return enc(lr_up), enc(hr.float())


def _distance(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b) if kind == "mse" else F.l1_loss(a, b)


def compute_losses(
    x0: torch.Tensor,
    z_hr: torch.Tensor,
    hr: torch.Tensor,
    vae: F16VAE,
    config: OP4KSRTrainConfig,
    perceptual: Perceptual | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms and their sum under ``"total"`` (scalars; unweighted values under their names).

    x0, z_hr: model latents ``[B, C, h, w]``; hr: ``[B, 3, H, W]`` in [0, 1]. Pixel terms decode x0 through
    the frozen decoder (gradients flow through its activations, not into its weights).
    """
    terms: dict[str, torch.Tensor] = {}
    total = x0.new_zeros(())
    if config.latent_weight > 0:
        terms["latent"] = _distance(config.latent_loss, x0.float(), z_hr.float())
        total = total + config.latent_weight * terms["latent"]
    if config.needs_decode:
        sr = vae.decode(vae.from_model_latent(x0).to(vae.dtype)).float()  # [-1, 1]
        target = hr.to(sr.device).float() * 2 - 1
        if config.pixel_weight > 0:
            terms["pixel"] = _distance(config.pixel_loss, sr, target)
            total = total + config.pixel_weight * terms["pixel"]
        if config.perceptual_weight > 0:
            if perceptual is None:
                raise ValueError("perceptual_weight > 0 but no perceptual model; see make_perceptual()")
            terms["perceptual"] = perceptual(sr, target).float().mean()
            total = total + config.perceptual_weight * terms["perceptual"]
        if config.lambda_ap > 0:
            # L_AP is contrast-invariant (normalised autocorrelation); [0, 1] images as in its docs.
            terms["ap"] = periodicity_loss((sr + 1) / 2, (target + 1) / 2, config.ap).mean()
            total = total + config.lambda_ap * terms["ap"]
    terms["total"] = total
    return terms


def make_perceptual(config: OP4KSRTrainConfig, device: torch.device) -> Perceptual | None:
    """LPIPS-VGG from local files (``perceptual='lpips'``) or the multi-scale L1 stand-in (``'standin'``)."""
    if config.perceptual == "none" or config.perceptual_weight == 0:
        return None
    from ..gtasr.perceptual import LPIPSUnavailableError, load_lpips_vgg, standin_perceptual

    if config.perceptual == "standin":
        log.warning("perceptual='standin' is a multi-scale L1 stand-in, NOT LPIPS: for CPU smoke runs only")
        return standin_perceptual
    try:
        return load_lpips_vgg(config.vgg16_weights or None, device)
    except LPIPSUnavailableError as err:
        raise ValueError(
            f"{err}. Or set perceptual = 'standin' (smoke runs) or perceptual_weight = 0."
        ) from err
