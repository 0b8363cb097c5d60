"""Blur kernels of the Real-ESRGAN degradation model, in pure torch (batched, GPU-friendly).

Every kernel is built on a fixed odd ``size``×``size`` grid centred on 0 (x along columns, y along rows). A
per-sample ``support`` (odd side, ≤ size) zeroes everything outside the centred ``support``×``support`` square,
which is exactly "build a smaller kernel, then zero-pad it to ``size``" (Real-ESRGAN samples the kernel side
per image and pads to a fixed size so a batch can be filtered at once).

Shapes: parameters may be Python numbers (→ a ``size``×``size`` kernel) or tensors of shape ``[B]`` (→
``[B, size, size]``). All kernels are normalised to sum to 1.

Kernel families (Real-ESRGAN, Wang et al. 2021, §3.1), with the quadratic form q(p) = pᵀ Σ⁻¹ p and
Σ = R(θ) diag(σx², σy²) R(θ)ᵀ:
  * Gaussian                 k ∝ exp(−q/2)
  * generalized Gaussian     k ∝ exp(−(q)^β / 2)
  * plateau                  k ∝ 1 / (1 + q^β)
  * sinc (circular low-pass) k(r) ∝ ω_c J1(ω_c r) / (2π r), k(0) = ω_c² / (4π)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "KERNEL_TYPES",
    "KernelSpec",
    "Param",
    "SINC_CUTOFF_LARGE",
    "SINC_CUTOFF_SMALL",
    "SINC_SMALL_KERNEL_LIMIT",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "kernel_grid",
    "plateau_kernel",
    "pulse_kernel",
    "quadratic_form",
    "sample_kernels",
    "sample_sinc_kernels",
    "sinc_kernel",
]


KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
# Sinc cut-off ranges used by Real-ESRGAN: small kernels cannot represent very low cut-offs.
SINC_SMALL_KERNEL_LIMIT = 13
SINC_CUTOFF_SMALL = (math.pi / 3, math.pi)
SINC_CUTOFF_LARGE = (math.pi / 5, math.pi)

Param = float | Tensor


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int, got {size!r}; use e.g. 21")


def _batched(values: list[Param | None], device: torch.device | None) -> tuple[list[Tensor | None], bool]:
    """Turn scalars / [B] tensors into float tensors of a common shape [B]; report whether all were scalars."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    scalar = not tensors
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    out: list[Tensor | None] = []
    for v in values:
        if v is None:
            out.append(None)
        else:
            out.append(torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1))
    shapes = {t.shape[0] for t in out if t is not None}
    batch = max(shapes) if shapes else 1
    if not shapes <= {1, batch}:
        raise ValueError(f"kernel parameters have mismatched batch sizes {sorted(shapes)}; pass [B] tensors")
    return [None if t is None else t.expand(batch) for t in out], scalar


def kernel_grid(size: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Integer pixel coordinates (xx, yy), each [size, size], centred on the middle tap."""
    _check_size(size)
    ax = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _finish(kernel: Tensor, size: int, support: Tensor | int | None, scalar: bool) -> Tensor:
    """Zero taps outside the per-sample support square, normalise to unit sum, drop the batch if scalar."""
    if support is not None:
        half = torch.as_tensor(support, device=kernel.device).reshape(-1, 1, 1) // 2
        if bool(((half * 2 + 1) > size).any()) or bool((half < 0).any()):
            raise ValueError(f"support {support} must be odd sides in [1, {size}]")
        xx, yy = kernel_grid(size, kernel.device)
        kernel = kernel * ((xx.abs() <= half) & (yy.abs() <= half))
    kernel = kernel / kernel.sum(dim=(-2, -1), keepdim=True)
    return kernel[0] if scalar and support is None else kernel


def quadratic_form(
    size: int,
    sigma_x: Param,
    sigma_y: Param | None = None,
    theta: Param = 0.0,
    device: torch.device | None = None,
) -> tuple[Tensor, bool]:
    """q(p) = pᵀ Σ⁻¹ p on the grid, [B, size, size], with Σ = R(θ) diag(σx², σy²) R(θ)ᵀ.

    ``sigma_y=None`` means isotropic (σy = σx). Returns (q, all_scalar).
    """
    (sx, sy, th), scalar = _batched([sigma_x, sigma_y, theta], device)
    assert sx is not None and th is not None
    sy = sx if sy is None else sy
    if bool((sx <= 0).any()) or bool((sy <= 0).any()):
        raise ValueError("kernel sigmas must be > 0; sample them from a positive range such as [0.2, 3]")
    xx, yy = kernel_grid(size, sx.device)
    c, s = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
    # Coordinates in the rotated frame: u = Rᵀ p, so q = u₁²/σx² + u₂²/σy².
    u = c * xx + s * yy
    v = -s * xx + c * yy
    q = (u / sx[:, None, None]) ** 2 + (v / sy[:, None, None]) ** 2
    return q, scalar


def gaussian_kernel(
    size: int,
    sigma_x: Param,
    sigma_y: Param | None = None,
    theta: Param = 0.0,
    *,
    support: Tensor | int | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Bivariate (an)isotropic Gaussian kernel k ∝ exp(−q/2): [size, size] or [B, size, size]."""
    q, scalar = quadratic_form(size, sigma_x, sigma_y, theta, device)
    return _finish(torch.exp(-0.5 * q), size, support, scalar)


def generalized_gaussian_kernel(
    size: int,
    sigma_x: Param,
    sigma_y: Param | None = None,
    theta: Param = 0.0,
    beta: Param = 1.0,
    *,
    support: Tensor | int | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Generalized Gaussian k ∝ exp(−q^β / 2) (β = 1 is the Gaussian; β < 1 heavier tails)."""
    q, scalar = quadratic_form(size, sigma_x, sigma_y, theta, device)
    (b,), _ = _batched([beta], q.device)
    assert b is not None
    return _finish(
        torch.exp(-0.5 * q.pow(b[:, None, None])), size, support, scalar and not isinstance(beta, Tensor)
    )


def plateau_kernel(
    size: int,
    sigma_x: Param,
    sigma_y: Param | None = None,
    theta: Param = 0.0,
    beta: Param = 1.0,
    *,
    support: Tensor | int | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Plateau-shaped kernel k ∝ 1 / (1 + q^β) (flat top, slow fall-off)."""
    q, scalar = quadratic_form(size, sigma_x, sigma_y, theta, device)
    (b,), _ = _batched([beta], q.device)
    assert b is not None
    return _finish(
        1.0 / (q.pow(b[:, None, None]) + 1.0), size, support, scalar and not isinstance(beta, Tensor)
    )


def sinc_kernel(
    size: int, cutoff: Param, *, support: Tensor | int | None = None, device: torch.device | None = None
) -> Tensor:
    """Circular low-pass (2-D sinc / Airy) kernel with angular cut-off ``cutoff`` (rad/px, in (0, π]).

    k(r) = ω_c J1(ω_c r) / (2π r), k(0) = ω_c²/(4π): the ideal disc low-pass filter truncated to the grid.
    """
    (wc,), scalar = _batched([cutoff], device)
    assert wc is not None
    if bool((wc <= 0).any()) or bool((wc > math.pi + 1e-6).any()):
        raise ValueError(f"sinc cutoff must be in (0, pi] rad/px, got {cutoff}")
    xx, yy = kernel_grid(size, wc.device)
    r = torch.sqrt(xx**2 + yy**2)
    w = wc[:, None, None]
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    k = torch.where(
        r > 0, w * torch.special.bessel_j1(w * safe_r) / (2 * math.pi * safe_r), w**2 / (4 * math.pi)
    )
    return _finish(k, size, support, scalar)


def pulse_kernel(size: int, batch: int | None = None, device: torch.device | None = None) -> Tensor:
    """Identity (Dirac) kernel: filtering with it leaves the image unchanged."""
    _check_size(size)
    k = torch.zeros(size, size, device=device)
    k[size // 2, size // 2] = 1.0
    return k if batch is None else k.expand(batch, size, size).clone()


@dataclass(frozen=True)
class KernelSpec:
    """How one degradation stage samples its blur kernels (Real-ESRGAN ``random_mixed_kernels`` + sinc)."""

    size: int = 21  # padded side of every kernel of the stage
    sizes: tuple[int, ...] = tuple(range(7, 22, 2))  # odd sides drawn uniformly, zero-padded to ``size``
    probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # over KERNEL_TYPES
    sigma_range: tuple[float, float] = (0.2, 3.0)
    rotation_range: tuple[float, float] = (-math.pi, math.pi)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1

    def __post_init__(self) -> None:
        _check_size(self.size)
        if not self.sizes or any(s % 2 == 0 or s < 1 or s > self.size for s in self.sizes):
            raise ValueError(f"KernelSpec.sizes {self.sizes} must be odd sides in [1, size={self.size}]")
        if len(self.probs) != len(KERNEL_TYPES) or min(self.probs) < 0 or abs(sum(self.probs) - 1) > 1e-6:
            raise ValueError(
                f"KernelSpec.probs {self.probs} must be {len(KERNEL_TYPES)} non-negative "
                f"weights for {KERNEL_TYPES} summing to 1"
            )
        for name in ("sigma_range", "betag_range", "betap_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"KernelSpec.{name}={(lo, hi)} must satisfy 0 < low <= high")
        if not 0.0 <= self.sinc_prob <= 1.0:
            raise ValueError(f"KernelSpec.sinc_prob={self.sinc_prob} must be a probability in [0, 1]")


def _uniform(lo: float | Tensor, hi: float | Tensor, n: int, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)


def _sample_beta(beta_range: tuple[float, float], n: int, g: torch.Generator) -> Tensor:
    """Real-ESRGAN draws β below or above 1 with equal chance, so shapes near Gaussian are well covered."""
    lo, hi = beta_range
    below = _uniform(lo, min(1.0, hi), n, g)
    above = _uniform(max(1.0, lo), hi, n, g)
    return torch.where(torch.rand(n, generator=g, device=g.device) < 0.5, below, above)


def sample_kernels(spec: KernelSpec, batch: int, generator: torch.Generator) -> Tensor:
    """Draw ``batch`` random kernels [B, spec.size, spec.size] on ``generator.device`` (one per image)."""
    g, n = generator, batch
    sizes = torch.tensor(spec.sizes, device=g.device)[
        torch.randint(len(spec.sizes), (n,), generator=g, device=g.device)
    ]
    probs = torch.tensor(spec.probs, device=g.device)
    kind = torch.multinomial(probs, n, replacement=True, generator=g)
    sx = _uniform(*spec.sigma_range, n, g)
    sy = _uniform(*spec.sigma_range, n, g)
    theta = _uniform(*spec.rotation_range, n, g)
    betag, betap = _sample_beta(spec.betag_range, n, g), _sample_beta(spec.betap_range, n, g)
    use_sinc = torch.rand(n, generator=g, device=g.device) < spec.sinc_prob
    u = torch.rand(n, generator=g, device=g.device)
    small = sizes < SINC_SMALL_KERNEL_LIMIT
    lo = torch.where(small, SINC_CUTOFF_SMALL[0], SINC_CUTOFF_LARGE[0])
    cutoff = lo + (SINC_CUTOFF_SMALL[1] - lo) * u

    iso = (kind % 2) == 0  # even indices of KERNEL_TYPES are the isotropic variants
    sy = torch.where(iso, sx, sy)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    family = kind // 2  # 0 Gaussian, 1 generalized Gaussian, 2 plateau
    beta = torch.where(family == 1, betag, torch.where(family == 2, betap, torch.ones_like(betag)))
    q, _ = quadratic_form(spec.size, sx, sy, theta)
    qb = q.pow(beta[:, None, None])
    k = torch.where((family == 2)[:, None, None], 1.0 / (qb + 1.0), torch.exp(-0.5 * qb))
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    k = torch.where(use_sinc[:, None, None], sinc_kernel(spec.size, cutoff), k)
    return _finish(k, spec.size, sizes, scalar=False)


def sample_sinc_kernels(
    size: int, sizes: tuple[int, ...], prob: float, batch: int, generator: torch.Generator
) -> Tensor:
    """Final-stage kernels: with probability ``prob`` a sinc (cut-off U[π/3, π]), else the identity pulse."""
    g = generator
    side = torch.tensor(sizes, device=g.device)[
        torch.randint(len(sizes), (batch,), generator=g, device=g.device)
    ]
    cutoff = _uniform(*SINC_CUTOFF_SMALL, batch, g)
    use = torch.rand(batch, generator=g, device=g.device) < prob
    k = sinc_kernel(size, cutoff, support=side)
    return torch.where(use[:, None, None], k, pulse_kernel(size, device=g.device))
