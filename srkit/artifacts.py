"""Artifact inspection (pure): periodicity and tile-seam scores of an image and a heatmap of where they are.

The ``SR4K_InspectArtifacts`` node (``nodes/inspect_artifacts.py``) adapts this to ComfyUI. A period-``period_px``
grid (OP4KSR's "intra-token" artifact, 32 px for the F16 VAE x 2x2 patches) shows in red, straight tile seams in
cyan. Scores come from :func:`srkit.periodicity.periodicity_score` (0 = none, 1 = a pure periodic pattern) and
:func:`srkit.seam.seam_search` (about 1 = no seams, above about 1.5 = visible seams).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .images import luma
from .periodicity import periodicity_map, periodicity_score
from .seam import DEFAULT_MIN_STRIDE, MIN_LINES, seam_heatmap, seam_search

__all__ = [
    "PERIODIC_RGB",
    "SCORE_HARMONICS",
    "SEAM_RGB",
    "STAGES_PER_IMAGE",
    "HeatmapConfig",
    "Inspection",
    "check_size",
    "compose_heatmap",
    "inspect_one",
    "min_side_px",
    "report",
]

SCORE_HARMONICS = 2  # periodicity_score's lags k*T, k = 1..2; its box needs 2 * (2T + T/2) px per side
STAGES_PER_IMAGE = 4  # periodicity score, periodicity map, seam score, seam map
# Heatmap colours (RGB) and the value ranges mapped to 0..1 opacity. Floors sit above what natural test content
# reaches (local periodicity <= 0.04, seam ratio 99.9th percentile about 1.9 on smooth noise); full opacity at
# clearly visible strengths (periodicity 0.3, seam ratio 6).
PERIODIC_RGB = (1.0, 0.2, 0.1)
SEAM_RGB = (0.0, 0.85, 1.0)


@dataclass(frozen=True)
class HeatmapConfig:
    """Value ranges of the two local measures mapped to heatmap opacity 0..1."""

    periodicity_floor: float = 0.05
    periodicity_full: float = 0.3
    seam_floor: float = 2.0
    seam_full: float = 6.0
    background: float = 0.45  # brightness of the greyscale image under the colours
    seam_widen_every_px: int = 1024  # seam lines grow by 1 px on each side per this many px of the long side

    def __post_init__(self) -> None:
        if not 0 <= self.periodicity_floor < self.periodicity_full:
            raise ValueError(
                f"need 0 <= periodicity_floor < periodicity_full, got {self.periodicity_floor}, "
                f"{self.periodicity_full}"
            )
        if not 1 <= self.seam_floor < self.seam_full:
            raise ValueError(f"need 1 <= seam_floor < seam_full, got {self.seam_floor}, {self.seam_full}")
        if self.seam_widen_every_px < 1:
            raise ValueError(f"seam_widen_every_px={self.seam_widen_every_px} must be >= 1")
        if not 0 <= self.background <= 1:
            raise ValueError(f"background={self.background} must lie in [0, 1]")


def min_side_px(period_px: int) -> int:
    """Smallest image side on which the period-``period_px`` score is defined (its largest autocorrelation box)."""
    return 2 * (SCORE_HARMONICS * period_px + period_px // 2)


def check_size(h: int, w: int, period_px: int, tile_stride_px: int) -> None:
    """Raise ``ValueError`` naming the fix when the image is too small for the requested measures."""
    need = min_side_px(period_px)
    if min(h, w) < need:
        raise ValueError(
            f"image {w}x{h} is too small to measure a {period_px}-px period: its short side must be "
            f">= {need} px. Lower period_px, or inspect a larger (upscaled) image."
        )
    if tile_stride_px and max(h, w) < MIN_LINES * tile_stride_px:
        raise ValueError(
            f"image {w}x{h} holds fewer than {MIN_LINES} tiles of stride {tile_stride_px} px, so "
            "seams cannot be measured; set tile_stride_px to 0 (search) or a smaller stride."
        )
    if not tile_stride_px and min(h, w) < MIN_LINES * DEFAULT_MIN_STRIDE:
        raise ValueError(
            f"image {w}x{h} is too small to search for tile seams (short side < "
            f"{MIN_LINES * DEFAULT_MIN_STRIDE} px); give tile_stride_px or inspect a larger image."
        )


def compose_heatmap(
    image: torch.Tensor, periodic: torch.Tensor, seams: torch.Tensor, scale: HeatmapConfig = HeatmapConfig()
) -> torch.Tensor:
    """Overlay of one image ``[3, H, W]`` in [0, 1]: dimmed greyscale, red where ``periodic`` [H, W] is high,
    cyan where ``seams`` [H, W] is high. Returns ``[3, H, W]`` in [0, 1]."""
    grey = luma(image[None])[0, 0] * scale.background
    a_p = ((periodic - scale.periodicity_floor) / (scale.periodicity_full - scale.periodicity_floor)).clamp(
        0, 1
    )
    a_s = ((seams - scale.seam_floor) / (scale.seam_full - scale.seam_floor)).clamp(0, 1)
    # Seams are 1 px lines: widen them so they stay visible when a 4K heatmap is previewed at ~1000 px.
    half = max(image.shape[-2:]) // scale.seam_widen_every_px
    if half:
        a_s = F.max_pool2d(a_s[None, None], 2 * half + 1, stride=1, padding=half)[0, 0]
    alpha = torch.maximum(a_p, a_s)
    weight = a_p + a_s
    out = []
    for cp, cs in zip(PERIODIC_RGB, SEAM_RGB, strict=True):
        colour = torch.where(weight > 0, (cp * a_p + cs * a_s) / weight.clamp(min=1e-6), 0.0)
        out.append(grey * (1 - alpha) + colour * alpha)
    return torch.stack(out).clamp(0, 1)


@dataclass(frozen=True)
class Inspection:
    """Scores of one image: periodicity (0..1), seam ratio (about 1 = none) and the seam grid's stride in px."""

    periodicity: float
    seams: float
    stride_px: int


def inspect_one(
    image: torch.Tensor, period_px: int, tile_stride_px: int, done: Callable[[int], None]
) -> tuple[Inspection, torch.Tensor]:
    """Scores and heatmap ``[3, H, W]`` of one image ``[3, H, W]`` (on its device).

    ``done(k)`` is called after stage k = 1..``STAGES_PER_IMAGE`` (progress, and a cancel point in ComfyUI).
    """
    batch = image[None]
    p = float(periodicity_score(batch, period_px, harmonics=SCORE_HARMONICS)[0])
    done(1)
    p_map = periodicity_map(image, period_px)
    done(2)
    found = seam_search(batch, [tile_stride_px] if tile_stride_px else None)
    done(3)
    s_map = seam_heatmap(image)
    done(4)
    heat = compose_heatmap(image, p_map, s_map)
    return Inspection(p, float(found.score[0]), int(found.stride[0])), heat


def report(results: list[Inspection], period_px: int) -> str:
    """The text shown on the node: periodicity first, one line per image, the batch mean, then the scale."""
    lines = [
        f"image {i + 1}/{len(results)}: periodicity {r.periodicity:.3f} ({period_px} px) | "
        f"seams {r.seams:.2f} (stride {r.stride_px} px)"
        for i, r in enumerate(results)
    ]
    if len(results) > 1:
        mean_p = sum(r.periodicity for r in results) / len(results)
        mean_s = sum(r.seams for r in results) / len(results)
        lines.append(f"batch mean (the FLOAT outputs): periodicity {mean_p:.3f} | seams {mean_s:.2f}")
    lines.append(
        f"scale: periodicity 0 = none .. 1 = pure {period_px}-px pattern; seams about 1 = none, "
        "> 1.5 = visible"
    )
    return "\n".join(lines)
