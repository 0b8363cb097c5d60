"""FLUX rotary position embedding (RoPE) maths, float64, no module state (docs/op4ksr.md §3.2).

FLUX splits each 128-dim attention head into per-axis groups ``axes_dim = [16, 56, 56]`` for the
position axes (image index, row, column). Axis ``a`` with ``d_a`` dims rotates ``d_a / 2`` adjacent
pairs (x_2k, x_2k+1) by angle ``p * omega_k`` with

    omega_k = theta ** (-2k / d_a),   k = 0 .. d_a/2 - 1,

the exponent being normalised by the *axis* dim, not the head dim. RFR (``rfr.py``) only changes
the ``theta`` fed to these functions, possibly per axis.

Bitwise equality with the hosts. ComfyUI (``comfy/ldm/flux/math.py:rope``) builds the exponents
``2k/d`` with ``linspace(0, (d-2)/d, d/2)``; diffusers (``get_1d_rotary_pos_embed``) and BFL build
them with ``arange(0, d, 2) / d``. The two differ by one float64 ulp in some entries (8 of the 28
for d = 56), so ``exponent_grid`` selects the host's construction and each drop-in embedder
reproduces its host bit for bit. Both hosts cast positions to float32 before the float64 product;
we do the same so that stock equality is exact (integer positions below 2**24 are exact anyway).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ExponentGrid",
    "axis_exponents",
    "axis_frequencies",
    "flux_image_ids",
    "flux_text_ids",
    "flux_ids",
    "rope_angles",
    "rope_matrices",
    "rope_cos_sin",
]

ExponentGrid = Literal["linspace", "arange"]
"""How ``2k/d`` is built: ``"linspace"`` as ComfyUI does, ``"arange"`` as diffusers and BFL do."""


def _check_dim(dim: int) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2 or dim % 2:
        raise ValueError(f"RoPE axis dim must be a positive even int, got {dim!r}.")


def _check_theta(theta: float) -> None:
    if not (isinstance(theta, (int, float)) and not isinstance(theta, bool) and 0 < theta < float("inf")):
        raise ValueError(f"RoPE base theta must be a finite number > 0, got {theta!r}.")


def axis_exponents(
    dim: int, exponent_grid: ExponentGrid = "linspace", device: torch.device | None = None
) -> Tensor:
    """Exponents ``2k/dim`` for k = 0 .. dim/2 - 1, float64, shape [dim // 2]."""
    _check_dim(dim)
    if exponent_grid == "linspace":
        return torch.linspace(0, (dim - 2) / dim, steps=dim // 2, dtype=torch.float64, device=device)
    if exponent_grid == "arange":
        return torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim
    raise ValueError(
        f"exponent_grid must be 'linspace' (ComfyUI) or 'arange' (diffusers), got {exponent_grid!r}."
    )


def axis_frequencies(
    dim: int,
    theta: float,
    exponent_grid: ExponentGrid = "linspace",
    device: torch.device | None = None,
) -> Tensor:
    """Angular frequencies ``omega_k = theta ** (-2k/dim)`` of one RoPE axis, float64, shape [dim // 2].

    omega_0 = 1 rad/token (wavelength 2*pi tokens); omega decreases geometrically with k.
    """
    _check_theta(theta)
    # 1 / theta**e rather than theta**-e: the hosts' exact operation order, for bitwise equality.
    return 1.0 / torch.pow(float(theta), axis_exponents(dim, exponent_grid, device))


def flux_image_ids(
    h_tokens: int, w_tokens: int, index: float = 0, h_offset: float = 0, w_offset: float = 0
) -> Tensor:
    """FLUX image position ids, float32, shape [h_tokens * w_tokens, 3], rows ``(index, row, col)``.

    Row-major over the token grid (row changes slowest), matching ComfyUI ``Flux.process_img`` and
    diffusers ``FluxPipeline._prepare_latent_image_ids``.
    """
    for name, value in (("h_tokens", h_tokens), ("w_tokens", w_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    rows = torch.arange(h_tokens, dtype=torch.float32) + h_offset
    cols = torch.arange(w_tokens, dtype=torch.float32) + w_offset
    ids = torch.empty(h_tokens, w_tokens, 3, dtype=torch.float32)
    ids[..., 0] = index
    ids[..., 1] = rows[:, None]
    ids[..., 2] = cols[None, :]
    return ids.reshape(h_tokens * w_tokens, 3)


def flux_text_ids(n_tokens: int, n_axes: int = 3) -> Tensor:
    """FLUX.1 text position ids: all zeros, float32, shape [n_tokens, n_axes]."""
    if not isinstance(n_tokens, int) or n_tokens < 0:
        raise ValueError(f"n_tokens must be an int >= 0, got {n_tokens!r}.")
    return torch.zeros(n_tokens, n_axes, dtype=torch.float32)


def flux_ids(txt_tokens: int, h_tokens: int, w_tokens: int, batch: int = 1) -> Tensor:
    """Joint ids ``cat(txt_ids, img_ids)`` (text first, as FLUX does), float32, shape [batch, T + H*W, 3]."""
    ids = torch.cat([flux_text_ids(txt_tokens), flux_image_ids(h_tokens, w_tokens)], dim=0)
    return ids.unsqueeze(0).expand(batch, -1, -1).contiguous()


def rope_angles(pos: Tensor, dim: int, theta: float, exponent_grid: ExponentGrid = "linspace") -> Tensor:
    """Rotation angles ``pos * omega_k``, float64, shape [*pos.shape, dim // 2].

    Positions go through float32 first, as in both hosts (see module docstring).
    """
    omega = axis_frequencies(dim, theta, exponent_grid, device=pos.device)
    return pos.to(torch.float32).to(torch.float64).unsqueeze(-1) * omega


def rope_matrices(pos: Tensor, dim: int, theta: float, exponent_grid: ExponentGrid = "linspace") -> Tensor:
    """2x2 rotation matrices ``[[cos, -sin], [sin, cos]]``, float64, shape [*pos.shape, dim // 2, 2, 2].

    Same layout as ComfyUI ``math.rope`` (which returns [B, L, dim/2, 2, 2] in float32).
    """
    angles = rope_angles(pos, dim, theta, exponent_grid)
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([cos, -sin, sin, cos], dim=-1).unflatten(-1, (2, 2))


def rope_cos_sin(
    pos: Tensor, dim: int, theta: float, exponent_grid: ExponentGrid = "arange"
) -> tuple[Tensor, Tensor]:
    """Interleaved cos and sin tables, float64, each shape [*pos.shape, dim].

    Each angle is repeated for its pair (x_2k, x_2k+1): diffusers ``get_1d_rotary_pos_embed`` with
    ``use_real=True, repeat_interleave_real=True``, the form FLUX uses.
    """
    angles = rope_angles(pos, dim, theta, exponent_grid)
    return (
        torch.cos(angles).repeat_interleave(2, dim=-1),
        torch.sin(angles).repeat_interleave(2, dim=-1),
    )
