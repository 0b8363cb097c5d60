"""Learned image-quality metrics (LPIPS, DISTS, NIQE, MUSIQ, MANIQA, CLIPIQA) through ``pyiqa``.

``pyiqa`` (IQA-PyTorch, Chen et al.) is the optional extra ``metrics`` (``pip install sr4k[metrics]``); it is
imported only when a metric is built, so the rest of sr4k works without it. These are the metrics and the
library of GTASR's evaluation script (docs/gtasr.md §9). pyiqa downloads each metric's weights
on first use into its own cache; offline machines must pre-populate that cache.

Images are [B, 3, H, W] RGB in [0, 1]. Full-reference metrics need the HR image, no-reference ones do not.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

__all__ = [
    "INSTALL_HINT",
    "IQAMetric",
    "IQAScorer",
    "IQA_METRICS",
    "MissingMetricsExtra",
    "check_iqa_name",
    "iqa_available",
    "require_pyiqa",
]


log = logging.getLogger(__name__)

INSTALL_HINT = "pip install sr4k[metrics]"


@dataclass(frozen=True)
class IQAMetric:
    """One pyiqa metric: its pyiqa name, whether it needs the HR reference, and its better direction."""

    name: str
    full_reference: bool
    lower_better: bool


IQA_METRICS: dict[str, IQAMetric] = {
    m.name: m
    for m in (
        IQAMetric("lpips", full_reference=True, lower_better=True),
        IQAMetric("dists", full_reference=True, lower_better=True),
        IQAMetric("niqe", full_reference=False, lower_better=True),
        IQAMetric("musiq", full_reference=False, lower_better=False),
        IQAMetric("maniqa", full_reference=False, lower_better=False),
        IQAMetric("clipiqa", full_reference=False, lower_better=False),
    )
}


class MissingMetricsExtra(ImportError):
    """``pyiqa`` is not installed; the message names the extra that provides it."""


def require_pyiqa() -> ModuleType:
    """Import ``pyiqa`` or raise :class:`MissingMetricsExtra` saying how to install it."""
    try:
        return importlib.import_module("pyiqa")
    except ImportError as err:
        raise MissingMetricsExtra(
            f"the metrics {', '.join(IQA_METRICS)} need the optional package pyiqa, which is not installed "
            f"({err}). Install the extra with: {INSTALL_HINT}  (or pick only psnr, ssim, seam, periodicity)"
        ) from err


def iqa_available() -> bool:
    """True when ``pyiqa`` can be imported."""
    try:
        require_pyiqa()
    except MissingMetricsExtra:
        return False
    return True


def check_iqa_name(name: str) -> IQAMetric:
    """The :class:`IQAMetric` for ``name`` or a ValueError listing the supported ones."""
    if name not in IQA_METRICS:
        raise ValueError(f"unknown learned metric {name!r}; choose from {sorted(IQA_METRICS)}")
    return IQA_METRICS[name]


class IQAScorer:
    """Builds each requested pyiqa metric once on ``device`` and scores images with it."""

    def __init__(self, names: tuple[str, ...] | list[str], device: str | torch.device = "cpu") -> None:
        self.specs = [check_iqa_name(n) for n in names]
        self.device = torch.device(device)
        self._pyiqa = require_pyiqa() if self.specs else None
        self._metrics: dict[str, torch.nn.Module] = {}

    def _metric(self, spec: IQAMetric) -> torch.nn.Module:
        if spec.name not in self._metrics:
            assert self._pyiqa is not None
            log.info("building pyiqa metric %s on %s (may download its weights once)", spec.name, self.device)
            self._metrics[spec.name] = self._pyiqa.create_metric(spec.name, device=self.device, as_loss=False)
        return self._metrics[spec.name]

    @torch.no_grad()
    def score(self, sr: Tensor, hr: Tensor | None = None) -> dict[str, Tensor]:
        """{name: [B] scores} for ``sr`` [B, 3, H, W] in [0, 1]; full-reference metrics only when ``hr`` is given."""
        if sr.ndim == 3:
            sr = sr[None]
        if hr is not None and hr.ndim == 3:
            hr = hr[None]
        out = {}
        for spec in self.specs:
            x = sr.to(self.device, torch.float32).clamp(0, 1)
            if spec.full_reference:
                if hr is None:
                    continue  # no ground truth (real-world LR-only sets): only no-reference metrics apply
                if hr.shape != sr.shape:
                    raise ValueError(
                        f"{spec.name}: sr {tuple(sr.shape)} and hr {tuple(hr.shape)} differ in shape"
                    )
                value = self._metric(spec)(x, hr.to(self.device, torch.float32).clamp(0, 1))
            else:
                value = self._metric(spec)(x)
            out[spec.name] = torch.as_tensor(value, dtype=torch.float64).reshape(-1).cpu()
        return out
