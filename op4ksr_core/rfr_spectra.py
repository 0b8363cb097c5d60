"""Per-axis RoPE spectra (frequencies + rotary magnitude) for every RFR mode, and the tables built from them.

``none``/``scale``/``ntk`` are one base per axis (``rfr.rescaled_thetas``) at magnitude 1; ``yarn`` and
``dype`` blend per band (``rope_yarn``) and scale the rescaled axes' cos/sin by ``1 + 0.1 ln s``, which
multiplies the rotated q and k of those dims by that factor each (YaRN's attention temperature folded into
the rotary tables, the way DyPE and UltraFlux apply it in FLUX, so no attention code changes).

Tables: ``embed_nd_spectra`` is ComfyUI's layout ([B, 1, L, D/2, 2, 2] rotation matrices),
``pos_embed_cos_sin_spectra`` diffusers' ((cos, sin), each [L, D]). Both in float64, cast to float32 at
the end, like ``embedder``'s theta-only tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .rfr import SPECTRAL_MODES, RFRConfig, rescaled_thetas
from .rope import ExponentGrid, axis_frequencies
from .rope_yarn import dype_kappa, yarn_frequencies, yarn_mscale

__all__ = ["AxisSpectrum", "axis_spectra", "embed_nd_spectra", "pos_embed_cos_sin_spectra"]


@dataclass(frozen=True)
class AxisSpectrum:
    """One RoPE axis: angular frequencies ``omega`` (float64 [dim // 2], rad/token) and a cos/sin magnitude."""

    omega: Tensor
    magnitude: float = 1.0


def axis_spectra(
    config: RFRConfig,
    axes_dim: Sequence[int],
    theta: float,
    grid_hw: tuple[float, float] | None,
    sigma: float | None = None,
    exponent_grid: ExponentGrid = "arange",
    device: torch.device | None = None,
) -> list[AxisSpectrum]:
    """The spectrum of every axis for a (rows, cols) token grid and, for ``dype``, the sampling sigma.

    ``sigma`` None means 1.0 (pure noise: ``dype`` equals ``yarn``). Axes outside ``config.axes`` keep the
    stock spectrum. ``grid_hw`` is needed by the grid modes (``ntk``, ``yarn``, ``dype``).
    """
    if config.mode not in SPECTRAL_MODES:
        thetas = rescaled_thetas(config, axes_dim, theta, grid_hw)
        return [
            AxisSpectrum(axis_frequencies(d, t, exponent_grid, device))
            for d, t in zip(axes_dim, thetas, strict=True)
        ]
    if max(config.axes) >= len(axes_dim):
        raise ValueError(f"RFRConfig.axes {config.axes} out of range for axes_dim {list(axes_dim)}.")
    if grid_hw is None:
        raise ValueError(f"RFRConfig(mode={config.mode!r}) needs grid_hw=(rows, cols) in tokens.")
    kappa = dype_kappa(1.0 if sigma is None else sigma) if config.mode == "dype" else 1.0
    spectra = [AxisSpectrum(axis_frequencies(d, theta, exponent_grid, device)) for d in axes_dim]
    for axis in config.axes:
        reference = config.reference_grid[axis - 1]
        scale = max(1.0, grid_hw[axis - 1] / reference)
        omega = yarn_frequencies(axes_dim[axis], theta, scale, reference, kappa, exponent_grid, device)
        spectra[axis] = AxisSpectrum(omega, yarn_mscale(scale))
    return spectra


def _angles(pos: Tensor, omega: Tensor) -> Tensor:
    # Positions through float32 first, as both hosts do (see rope.py).
    return pos.to(torch.float32).to(torch.float64).unsqueeze(-1) * omega.to(pos.device)


def embed_nd_spectra(ids: Tensor, spectra: Sequence[AxisSpectrum]) -> Tensor:
    """ComfyUI-layout RoPE from spectra: ids [B, L, n] -> float32 [B, 1, L, sum(d)/2, 2, 2]."""
    if ids.ndim != 3 or ids.shape[-1] != len(spectra):
        raise ValueError(f"ids must be [B, L, {len(spectra)}], got shape {tuple(ids.shape)}.")
    from .embedder import fp64_device

    pos = ids.to(fp64_device(ids.device))
    mats = []
    for i, spec in enumerate(spectra):
        angles = _angles(pos[..., i], spec.omega)
        cos, sin = torch.cos(angles), torch.sin(angles)
        mat = torch.stack([cos, -sin, sin, cos], dim=-1).unflatten(-1, (2, 2))
        mats.append(mat if spec.magnitude == 1.0 else mat * spec.magnitude)
    return torch.cat(mats, dim=-3).unsqueeze(1).to(device=ids.device, dtype=torch.float32)


def pos_embed_cos_sin_spectra(ids: Tensor, spectra: Sequence[AxisSpectrum]) -> tuple[Tensor, Tensor]:
    """diffusers-layout RoPE from spectra: ids [L, n] -> (cos, sin), each float32 [L, sum(d)]."""
    if ids.ndim != 2 or ids.shape[-1] != len(spectra):
        raise ValueError(f"ids must be [L, {len(spectra)}], got shape {tuple(ids.shape)}.")
    from .embedder import fp64_device

    pos = ids.to(fp64_device(ids.device))
    cos_parts, sin_parts = [], []
    for i, spec in enumerate(spectra):
        angles = _angles(pos[:, i], spec.omega)
        cos_parts.append(torch.cos(angles).repeat_interleave(2, dim=-1) * spec.magnitude)
        sin_parts.append(torch.sin(angles).repeat_interleave(2, dim=-1) * spec.magnitude)
    cos, sin = torch.cat(cos_parts, dim=-1), torch.cat(sin_parts, dim=-1)
    return cos.to(device=ids.device, dtype=torch.float32), sin.to(device=ids.device, dtype=torch.float32)
