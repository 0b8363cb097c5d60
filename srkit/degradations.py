"""Real-ESRGAN second-order degradation pipeline (Wang et al. 2021), batched on any device and seeded.

HR [B, 3, H, W] in [0, 1] → (LR [B, 3, H/s, W/s], LR bicubic-upsampled to H×W, HR), LR and LR-up rounded to
8-bit levels. Stages (GTASR recipe, docs/gtasr.md §7; Real-ESRGAN ``feed_data``):

  1st: blur (per-image kernel) → random resize up/down/keep (area/bilinear/bicubic) → Gaussian or Poisson
       noise (optionally gray) → JPEG;
  2nd (with ``second_order_prob``): blur (``second.blur_prob``) → resize relative to H/s → noise;
  final, order chosen with probability ½: [resize to H/s + sinc] → JPEG, or JPEG → [resize to H/s + sinc].

Per-image randomness (kernels, noise levels, gray flags, JPEG qualities) and per-batch randomness (resize
factors and modes, Gaussian vs Poisson, stage order; a batch must keep one spatial size) are all drawn from
one explicit ``torch.Generator``: the same seed on the same device gives the same output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .jpeg import CODECS as JPEG_CODECS
from .jpeg import jpeg_compress
from .kernels import KernelSpec, sample_kernels, sample_sinc_kernels
from .noise import add_noise, gaussian_noise, poisson_noise

__all__ = [
    "DegradationConfig",
    "DegradedBatch",
    "Degrader",
    "LEVELS_8BIT",
    "PRESETS",
    "RESIZE_MODES",
    "StageSpec",
    "degrade",
    "filter2d",
    "quantize_8bit",
]


RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
LEVELS_8BIT = 255.0


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}={p} must be a probability in [0, 1]")


def _check_range(name: str, r: tuple[float, float], low: float) -> None:
    if len(r) != 2 or not low <= r[0] <= r[1]:
        raise ValueError(f"{name}={r} must be (low, high) with {low} <= low <= high")


@dataclass(frozen=True)
class StageSpec:
    """One degradation stage: blur, resize, noise and JPEG parameters (Real-ESRGAN option names)."""

    kernel: KernelSpec = field(default_factory=KernelSpec)
    blur_prob: float = 1.0
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian σ in 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)

    def __post_init__(self) -> None:
        for name in ("blur_prob", "gaussian_noise_prob", "gray_noise_prob"):
            _check_prob(name, getattr(self, name))
        if (
            len(self.resize_probs) != 3
            or min(self.resize_probs) < 0
            or abs(sum(self.resize_probs) - 1) > 1e-6
        ):
            raise ValueError(
                f"resize_probs={self.resize_probs} must be 3 weights (up, down, keep) summing to 1"
            )
        _check_range("resize_range", self.resize_range, 1e-3)
        if not self.resize_range[0] <= 1.0 <= self.resize_range[1]:
            raise ValueError(f"resize_range={self.resize_range} must contain 1 (down below, up above)")
        _check_range("noise_range", self.noise_range, 0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, 0.0)
        _check_range("jpeg_range", self.jpeg_range, 1.0)
        if self.jpeg_range[1] > 100:
            raise ValueError(f"jpeg_range={self.jpeg_range} must lie in [1, 100]")


@dataclass(frozen=True)
class DegradationConfig:
    """Whole pipeline: scale factor, two stages, final sinc / resize / JPEG."""

    scale: int = 4
    first: StageSpec = field(default_factory=StageSpec)
    second: StageSpec = field(default_factory=StageSpec)
    second_order_prob: float = 1.0
    final_kernel_size: int = 21
    final_sinc_sizes: tuple[int, ...] = tuple(range(7, 22, 2))
    final_sinc_prob: float = 0.8
    resize_then_jpeg_prob: float = 0.5  # P([resize + sinc] → JPEG) vs JPEG → [resize + sinc]
    resize_modes: tuple[str, ...] = RESIZE_MODES
    jpeg_chroma_subsampling: bool = True
    jpeg_codec: str = "libjpeg"  # "basicsr": BasicSR's DiffJPEG, what the GTASR release trained with

    def __post_init__(self) -> None:
        if self.jpeg_codec not in JPEG_CODECS:
            raise ValueError(f"jpeg_codec={self.jpeg_codec!r} must be one of {JPEG_CODECS}")
        if not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale={self.scale!r} must be a positive int, e.g. 4 or 16")
        for name in ("second_order_prob", "final_sinc_prob", "resize_then_jpeg_prob"):
            _check_prob(name, getattr(self, name))
        if self.final_kernel_size % 2 == 0 or any(
            s % 2 == 0 or s > self.final_kernel_size for s in self.final_sinc_sizes
        ):
            raise ValueError(
                f"final sinc sizes {self.final_sinc_sizes} must be odd and <= final_kernel_size="
                f"{self.final_kernel_size} (odd)"
            )
        bad = [m for m in self.resize_modes if m not in RESIZE_MODES]
        if not self.resize_modes or bad:
            raise ValueError(f"resize_modes {bad or '()'} invalid; choose from {RESIZE_MODES}")

    def with_scale(self, scale: int) -> DegradationConfig:
        """Same recipe at another scale factor (e.g. 16 for 256 → 4096)."""
        return dataclasses.replace(self, scale=scale)


_ODD_3_19 = tuple(range(3, 21, 2))  # GTASR/ResShift: range(3, blur_kernel_size=21, 2)
_ODD_3_13 = tuple(range(3, 15, 2))  # GTASR/ResShift: range(3, blur_kernel_size2=15, 2)

PRESETS: dict[str, DegradationConfig] = {
    # GTASR released config (docs/gtasr.md §7): ResShift-style kernel ranges, second stage with probability 0.5,
    # JPEG as BasicSR's DiffJPEG computes it (the release's training pairs; libjpeg differs by ~27 dB).
    "gtasr": DegradationConfig(
        scale=4,
        first=StageSpec(kernel=KernelSpec(size=21, sizes=_ODD_3_19, sigma_range=(0.2, 3.0))),
        second=StageSpec(
            kernel=KernelSpec(size=15, sizes=_ODD_3_13, sigma_range=(0.2, 1.5)),
            blur_prob=0.8,
            resize_probs=(0.3, 0.4, 0.3),
            resize_range=(0.3, 1.2),
            noise_range=(1.0, 25.0),
            poisson_scale_range=(0.05, 2.5),
        ),
        second_order_prob=0.5,
        final_kernel_size=15,
        final_sinc_sizes=_ODD_3_13,
        jpeg_codec="basicsr",
    ),
    # Original Real-ESRGAN (x4plus) options: kernels 7..21 padded to 21, second stage always.
    "realesrgan": DegradationConfig(
        scale=4,
        first=StageSpec(),
        second=StageSpec(
            kernel=KernelSpec(sigma_range=(0.2, 1.5)),
            blur_prob=0.8,
            resize_probs=(0.3, 0.4, 0.3),
            resize_range=(0.3, 1.2),
            noise_range=(1.0, 25.0),
            poisson_scale_range=(0.05, 2.5),
        ),
        second_order_prob=1.0,
    ),
}


class DegradedBatch(NamedTuple):
    """lr [B, 3, H/s, W/s], lr_up [B, 3, H, W] (bicubic), hr [B, 3, H, W]; all in [0, 1]."""

    lr: Tensor
    lr_up: Tensor
    hr: Tensor


def filter2d(images: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each image [B, C, H, W] with its own kernel [B, k, k] (reflect padding, same size)."""
    b, c, h, w = images.shape
    k = kernels.shape[-1]
    pad = k // 2
    # Reflect needs pad < side; tiny intermediates (high scale factors) fall back to edge replication.
    mode = "reflect" if pad < min(h, w) else "replicate"
    x = F.pad(images, (pad, pad, pad, pad), mode=mode).reshape(1, b * c, h + 2 * pad, w + 2 * pad)
    weight = kernels.to(images.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    # conv2d is a correlation; flip so that this is a true convolution (matters for rotated kernels).
    return F.conv2d(x, weight.flip(-2, -1), groups=b * c).view(b, c, h, w)


def _rand(g: torch.Generator, n: int = 1) -> Tensor:
    return torch.rand(n, generator=g, device=g.device)


def _choice(g: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (1,), generator=g, device=g.device).item())


def _resize(images: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    if mode == "area":
        return F.interpolate(images, size=size, mode=mode)
    return F.interpolate(images, size=size, mode=mode, align_corners=False)


def _random_factor(spec: StageSpec, g: torch.Generator) -> float:
    kind = int(torch.multinomial(torch.tensor(spec.resize_probs, device=g.device), 1, generator=g).item())
    u = float(_rand(g).item())
    lo, hi = spec.resize_range
    return (1.0 + u * (hi - 1.0)) if kind == 0 else (lo + u * (1.0 - lo)) if kind == 1 else 1.0


def _noise(x: Tensor, spec: StageSpec, g: torch.Generator) -> Tensor:
    b = x.shape[0]
    use_gaussian = bool(_rand(g).item() < spec.gaussian_noise_prob)
    gray = (_rand(g, b) < spec.gray_noise_prob).to(x.device)
    if use_gaussian:
        lo, hi = spec.noise_range
        sigma = ((lo + (hi - lo) * _rand(g, b)) / LEVELS_8BIT).to(x.device)
        return add_noise(x, gaussian_noise(x, sigma, gray, g))
    lo, hi = spec.poisson_scale_range
    return add_noise(x, poisson_noise(x, (lo + (hi - lo) * _rand(g, b)).to(x.device), gray, g))


def _jpeg(x: Tensor, spec: StageSpec, g: torch.Generator, config: DegradationConfig) -> Tensor:
    lo, hi = spec.jpeg_range
    quality = (lo + (hi - lo) * _rand(g, x.shape[0])).to(x.device)
    return jpeg_compress(
        x.clamp(0, 1), quality, chroma_subsampling=config.jpeg_chroma_subsampling, codec=config.jpeg_codec
    )


def degrade(hr: Tensor, config: DegradationConfig, generator: torch.Generator) -> DegradedBatch:
    """Run the second-order pipeline on ``hr`` [B, 3, H, W] in [0, 1] (H, W divisible by ``config.scale``)."""
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"hr must be RGB [B, 3, H, W] in [0, 1], got {tuple(hr.shape)}")
    b, _, h, w = hr.shape
    s = config.scale
    if h % s or w % s:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {s}; crop HR to a multiple of {s}")
    g, modes = generator, config.resize_modes
    hr = hr.float()
    # Kernels are drawn first, in a fixed order, so the stream does not depend on later branch choices.
    k1 = sample_kernels(config.first.kernel, b, g).to(hr.device)
    k2 = sample_kernels(config.second.kernel, b, g).to(hr.device)
    k_final = sample_sinc_kernels(
        config.final_kernel_size, config.final_sinc_sizes, config.final_sinc_prob, b, g
    ).to(hr.device)

    out = filter2d(hr, k1) if bool(_rand(g).item() < config.first.blur_prob) else hr
    f = _random_factor(config.first, g)
    out = _resize(out, (int(h * f), int(w * f)), modes[_choice(g, len(modes))])
    out = _noise(out, config.first, g)
    out = _jpeg(out, config.first, g, config)

    if bool(_rand(g).item() < config.second_order_prob):
        if bool(_rand(g).item() < config.second.blur_prob):
            out = filter2d(out, k2)
        f = _random_factor(config.second, g)
        out = _resize(out, (int(h / s * f), int(w / s * f)), modes[_choice(g, len(modes))])
        out = _noise(out, config.second, g)

    lr_size = (h // s, w // s)
    mode = modes[_choice(g, len(modes))]
    if bool(_rand(g).item() < config.resize_then_jpeg_prob):
        out = filter2d(_resize(out, lr_size, mode), k_final)
        out = _jpeg(out, config.second, g, config)
    else:
        out = _jpeg(out, config.second, g, config)
        out = filter2d(_resize(out, lr_size, mode), k_final)

    lr = quantize_8bit(out)
    lr_up = quantize_8bit(F.interpolate(lr, size=(h, w), mode="bicubic", align_corners=False))
    return DegradedBatch(lr=lr, lr_up=lr_up, hr=hr)


def quantize_8bit(images: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the 256 levels of an 8-bit image."""
    return torch.clamp(torch.round(images * LEVELS_8BIT), 0, LEVELS_8BIT) / LEVELS_8BIT


class Degrader:
    """Stateful convenience wrapper: one config and one seeded generator on ``device``; call with HR batches."""

    def __init__(
        self, config: DegradationConfig | str = "gtasr", seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        if isinstance(config, str):
            if config not in PRESETS:
                raise ValueError(f"unknown degradation preset {config!r}; choose from {sorted(PRESETS)}")
            config = PRESETS[config]
        self.config = config
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, hr: Tensor) -> DegradedBatch:
        return degrade(hr.to(self.generator.device), self.config, self.generator)
