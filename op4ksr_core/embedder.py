"""RoPE embedders with per-axis (RFR-rescaled) bases, drop-in for ComfyUI and diffusers FLUX.

- ``RFREmbedder``: same call and output as ComfyUI ``comfy.ldm.flux.layers.EmbedND`` (ids [B, L, n]
  -> [B, 1, L, D/2, 2, 2] float32 rotation matrices) and the same ``dim``/``theta``/``axes_dim``
  attributes. Install with ``model.clone().add_object_patch("diffusion_model.pe_embedder", emb)``.
- ``RFRPosEmbed``: same call and output as diffusers ``FluxPosEmbed`` (ids [L, n] -> (cos, sin),
  each [L, D] float32). Install with ``transformer.pos_embed = RFRPosEmbed.from_module(...)``.

Both read the token grid from the ids at every call (largest row and column position + 1), so one
patched model adapts to any resolution. Modes ``yarn``/``dype`` build their tables from per-band spectra
(``rfr_spectra``); ``dype`` also reads ``self.sigma``, which the host sets per model call. With ``RFRConfig(mode="none")`` each is bitwise equal to its
host's stock embedder (tests/unit/test_op4ksr_rope_embedder.py).

Precision: frequencies, angles, cos and sin in float64, cast to float32 at the end, as both hosts do;
angles reach ~127 rad at 4K, where float32 angle error is a plausible source of the periodic artefacts
OP4KSR fights (style.md rule 5). Devices without float64 compute on the CPU, as ComfyUI does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .rfr import SPECTRAL_MODES, RFRConfig, rescaled_thetas
from .rfr_spectra import AxisSpectrum, axis_spectra, embed_nd_spectra, pos_embed_cos_sin_spectra
from .rope import ExponentGrid, rope_cos_sin, rope_matrices

__all__ = [
    "fp64_device",
    "grid_from_ids",
    "embed_nd",
    "pos_embed_cos_sin",
    "RFREmbedder",
    "RFRPosEmbed",
]

# CUDA (and ROCm, which reports "cuda") and CPU have float64. MPS has none; XPU and DirectML
# ("privateuseone") may lack it or emulate it slowly, so ComfyUI's math.rope moves them to the CPU too.
_FP64_DEVICE_TYPES = ("cpu", "cuda")


def fp64_device(device: torch.device) -> torch.device:
    """``device`` if it computes float64 natively, else the CPU."""
    return device if device.type in _FP64_DEVICE_TYPES else torch.device("cpu")


def grid_from_ids(ids: Tensor) -> tuple[float, float]:
    """(rows, cols) token extent implied by FLUX position ids [..., n_axes >= 3]: max position + 1.

    Text ids are zeros and do not change the maxima; Kontext-style reference tokens placed at
    offsets extend the extent, as they extend the position range the model sees. One host sync.
    """
    if ids.ndim < 2 or ids.shape[-1] < 3 or ids.numel() == 0:
        raise ValueError(f"ids must be [..., L, n_axes>=3] with L > 0, got shape {tuple(ids.shape)}.")
    extent = ids[..., 1:3].reshape(-1, 2).amax(dim=0).to(torch.float64) + 1.0
    rows, cols = extent.tolist()
    return (max(rows, 1.0), max(cols, 1.0))


def _check_ids(ids: Tensor, axes_dim: Sequence[int], thetas: Sequence[float], ndim: int) -> None:
    if ids.ndim != ndim or ids.shape[-1] != len(axes_dim):
        want = "[B, L, n_axes]" if ndim == 3 else "[L, n_axes]"
        raise ValueError(
            f"ids must be {want} with n_axes = len(axes_dim) = {len(axes_dim)}, got shape {tuple(ids.shape)}."
        )
    if len(thetas) != len(axes_dim):
        raise ValueError(f"need one theta per axis: axes_dim {list(axes_dim)}, thetas {list(thetas)}.")


def embed_nd(
    ids: Tensor, axes_dim: Sequence[int], thetas: Sequence[float], exponent_grid: ExponentGrid = "linspace"
) -> Tensor:
    """ComfyUI-layout RoPE: ids [B, L, n] -> float32 [B, 1, L, sum(axes_dim)/2, 2, 2] on ids.device.

    Axis i uses ``axes_dim[i]`` dims and base ``thetas[i]``; per-axis blocks are concatenated in axis
    order along the band dimension, as ``EmbedND`` does.
    """
    _check_ids(ids, axes_dim, thetas, ndim=3)
    pos = ids.to(fp64_device(ids.device))
    mats = [rope_matrices(pos[..., i], axes_dim[i], thetas[i], exponent_grid) for i in range(len(axes_dim))]
    return torch.cat(mats, dim=-3).unsqueeze(1).to(device=ids.device, dtype=torch.float32)


def pos_embed_cos_sin(
    ids: Tensor, axes_dim: Sequence[int], thetas: Sequence[float], exponent_grid: ExponentGrid = "arange"
) -> tuple[Tensor, Tensor]:
    """diffusers-layout RoPE: ids [L, n] -> (cos, sin), each float32 [L, sum(axes_dim)] on ids.device."""
    _check_ids(ids, axes_dim, thetas, ndim=2)
    pos = ids.to(fp64_device(ids.device))
    tables = [rope_cos_sin(pos[:, i], axes_dim[i], thetas[i], exponent_grid) for i in range(len(axes_dim))]
    cos = torch.cat([c for c, _ in tables], dim=-1)
    sin = torch.cat([s for _, s in tables], dim=-1)
    return cos.to(device=ids.device, dtype=torch.float32), sin.to(device=ids.device, dtype=torch.float32)


class _RFRBase(nn.Module):
    """Shared state of both embedders: base ``theta``, ``axes_dim``, ``dim`` and the RFR config."""

    def __init__(
        self, theta: float, axes_dim: Sequence[int], config: RFRConfig | None, exponent_grid: ExponentGrid
    ) -> None:
        super().__init__()
        axes = [int(a) for a in axes_dim]
        if not axes or any(a < 2 or a % 2 for a in axes):
            raise ValueError(f"axes_dim must be positive even ints, got {list(axes_dim)!r}.")
        self.theta = theta  # the stock base, as host code reading ``.theta`` expects
        self.axes_dim = axes
        self.dim = sum(axes)
        self.config = RFRConfig() if config is None else config
        self.exponent_grid: ExponentGrid = exponent_grid
        # The sampling sigma of the current model call, for mode "dype" (None = 1.0). Set by the host:
        # a ComfyUI DIFFUSION_MODEL wrapper (nodes/rfr_sigma.py) or a diffusers forward hook (headless).
        self.sigma: float | None = None
        # The (rows, cols) grid RFR rescales for, when it is not the ids' extent: a training crop placed in a
        # 4K canvas has ids origin + arange but must get the canvas's theta' (training/op4ksr/canvas.py).
        self.grid_hw: tuple[float, float] | None = None
        # Validate axes/theta against the config now rather than at the first sampling step.
        self.spectra_for((1.0, 1.0))

    def thetas_for(self, grid_hw: tuple[float, float]) -> tuple[float, ...]:
        """Per-axis bases this embedder uses for a (rows, cols) token grid."""
        return rescaled_thetas(self.config, self.axes_dim, self.theta, grid_hw)

    def spectra_for(self, grid_hw: tuple[float, float]) -> list[AxisSpectrum]:
        """Per-axis frequencies and rotary magnitudes for a (rows, cols) grid at the current ``sigma``."""
        return axis_spectra(self.config, self.axes_dim, self.theta, grid_hw, self.sigma, self.exponent_grid)

    @property
    def spectral(self) -> bool:
        """Whether the mode sets per-band spectra (``yarn``/``dype``) rather than one base per axis."""
        return self.config.mode in SPECTRAL_MODES

    def _grid(self, ids: Tensor) -> tuple[float, float]:
        """The grid RFR sees: the ``grid_hw`` override if set, else the ids' extent."""
        return self.grid_hw if self.grid_hw is not None else grid_from_ids(ids)

    def _thetas_for_ids(self, ids: Tensor) -> tuple[float, ...]:
        # Only NTK depends on the grid; skipping the max() avoids a device sync for the other modes.
        grid = self._grid(ids) if self.config.mode == "ntk" else None
        return rescaled_thetas(self.config, self.axes_dim, self.theta, grid)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, axes_dim={self.axes_dim}, config={self.config}"


class RFREmbedder(_RFRBase):
    """Drop-in for ComfyUI ``EmbedND`` with RFR bases: ids [B, L, n] -> [B, 1, L, D/2, 2, 2] float32."""

    def __init__(
        self,
        dim: int,
        theta: float,
        axes_dim: Sequence[int],
        config: RFRConfig | None = None,
        exponent_grid: ExponentGrid = "linspace",
    ) -> None:
        super().__init__(theta, axes_dim, config, exponent_grid)
        if dim != self.dim:
            raise ValueError(f"dim {dim} must equal sum(axes_dim) = {self.dim} (axes_dim {self.axes_dim}).")

    @classmethod
    def from_module(cls, embedder: nn.Module, config: RFRConfig | None = None) -> RFREmbedder:
        """Build from a ComfyUI ``EmbedND`` (or any module with ``dim``, ``theta``, ``axes_dim``)."""
        missing = [a for a in ("dim", "theta", "axes_dim") if not hasattr(embedder, a)]
        if missing:
            raise TypeError(
                f"{type(embedder).__name__} lacks {missing}; expected a FLUX EmbedND "
                "(model.diffusion_model.pe_embedder)."
            )
        return cls(embedder.dim, embedder.theta, embedder.axes_dim, config)

    def forward(self, ids: Tensor) -> Tensor:
        if self.spectral:
            return embed_nd_spectra(ids, self.spectra_for(self._grid(ids)))
        return embed_nd(ids, self.axes_dim, self._thetas_for_ids(ids), self.exponent_grid)


class RFRPosEmbed(_RFRBase):
    """Drop-in for diffusers ``FluxPosEmbed`` with RFR bases: ids [L, n] -> (cos, sin), each [L, D] float32."""

    def __init__(
        self,
        theta: float,
        axes_dim: Sequence[int],
        config: RFRConfig | None = None,
        exponent_grid: ExponentGrid = "arange",
    ) -> None:
        super().__init__(theta, axes_dim, config, exponent_grid)

    @classmethod
    def from_module(cls, pos_embed: nn.Module, config: RFRConfig | None = None) -> RFRPosEmbed:
        """Build from a diffusers ``FluxPosEmbed`` (``transformer.pos_embed``)."""
        missing = [a for a in ("theta", "axes_dim") if not hasattr(pos_embed, a)]
        if missing:
            raise TypeError(
                f"{type(pos_embed).__name__} lacks {missing}; expected a diffusers FluxPosEmbed "
                "(transformer.pos_embed)."
            )
        return cls(pos_embed.theta, pos_embed.axes_dim, config)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        if self.spectral:
            return pos_embed_cos_sin_spectra(ids, self.spectra_for(self._grid(ids)))
        return pos_embed_cos_sin(ids, self.axes_dim, self._thetas_for_ids(ids), self.exponent_grid)
