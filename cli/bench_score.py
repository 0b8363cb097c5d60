"""Scoring for ``sr4k bench``: metrics of SR outputs against their HR images, JSON and Markdown tables.

Built-in metrics (no extra packages):
  * ``psnr``, ``ssim``: BT.601 Y channel on 8-bit images, pyiqa's convention (``srkit.metrics``: SSIM on Y
    rounded to levels, ``protocol="pyiqa"``; what the papers report), optional border crop;
  * ``seam``: tile-seam score (``srkit.seam``; ~1 = seamless, > ~1.5 visible seams);
  * ``periodicity``: period-32 px autocorrelation score (``srkit.periodicity``, the F16 + 2x2-packing
    token grid; ~0 natural, -> 1 for a pure grid pattern).
Learned metrics (``lpips``, ``dists``, ``niqe``, ``musiq``, ``maniqa``, ``clipiqa``) come from ``pyiqa``
(``srkit.iqa``; ``pip install sr4k[metrics]``).

A metric that cannot apply to an image (too small for its window or lags, wrong channels: its ValueError) is
``None`` for that image, with the reason in ``not_applicable``; the other metrics are still computed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..srkit.datasets import DatasetError, list_images
from ..srkit.image_io import image_size, read_image
from ..srkit.iqa import IQA_METRICS, IQAScorer
from ..srkit.metrics import psnr, ssim
from ..srkit.periodicity import periodicity_score
from ..srkit.seam import seam_score

BUILTIN_METRICS: dict[str, tuple[bool, bool]] = {  # name: (needs HR, lower is better)
    "psnr": (True, False),
    "ssim": (True, False),
    "seam": (False, True),
    "periodicity": (False, True),
}
DEFAULT_METRICS = ("psnr", "ssim", "seam", "periodicity")
ALL_METRICS = tuple(BUILTIN_METRICS) + tuple(IQA_METRICS)


def needs_hr(name: str) -> bool:
    return BUILTIN_METRICS[name][0] if name in BUILTIN_METRICS else IQA_METRICS[name].full_reference


def lower_better(name: str) -> bool:
    return BUILTIN_METRICS[name][1] if name in BUILTIN_METRICS else IQA_METRICS[name].lower_better


def parse_metrics(spec: str | None) -> tuple[str, ...]:
    """Comma list of metric names (default :data:`DEFAULT_METRICS`); ValueError naming unknown ones."""
    if not spec:
        return DEFAULT_METRICS
    names = tuple(dict.fromkeys(n.strip().lower() for n in spec.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or spec!r}; choose from {', '.join(ALL_METRICS)}")
    return names


@dataclass
class Scorer:
    """Scores one SR image (and its HR) on ``metrics``; pyiqa metrics are built once, on first use."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    crop_border: int = 0
    device: str = "cpu"
    _iqa: IQAScorer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        learned = [m for m in self.metrics if m in IQA_METRICS]
        self._iqa = IQAScorer(learned, self.device) if learned else None  # fails early if pyiqa is missing

    def applicable(self, has_hr: bool) -> tuple[str, ...]:
        return tuple(m for m in self.metrics if has_hr or not needs_hr(m))

    def _builtin(self, name: str, s: Tensor, h: Tensor | None) -> float:
        if name == "psnr":
            return float(psnr(s, h, crop_border=self.crop_border, quantize=True)[0])
        if name == "ssim":
            return float(ssim(s, h, crop_border=self.crop_border, quantize=True, protocol="pyiqa")[0])
        if name == "seam":
            return float(seam_score(s)[0])
        return float(periodicity_score(s)[0])

    @torch.no_grad()
    def evaluate(self, sr: Tensor, hr: Tensor | None) -> tuple[dict[str, float | None], dict[str, str]]:
        """({metric: value or None}, {metric: why it is None}) for one image pair ([3, H, W] in [0, 1];
        ``hr`` None skips full-reference metrics). A built-in metric whose function rejects the image with a
        ValueError (too small, wrong channels) is None with that message; the others are still computed."""
        out: dict[str, float | None] = {}
        reasons: dict[str, str] = {}
        s, h = sr[None].float(), None if hr is None else hr[None].float()
        for name in self.applicable(h is not None):
            if name not in BUILTIN_METRICS:
                continue
            try:
                out[name] = self._builtin(name, s, h)
            except ValueError as err:  # the metric's own input check: it cannot apply to this image
                out[name], reasons[name] = None, str(err)
        if self._iqa is not None:
            out.update({k: float(v[0]) for k, v in self._iqa.score(s, h).items()})
        return {m: out[m] for m in self.metrics if m in out}, reasons

    def score(self, sr: Tensor, hr: Tensor | None) -> dict[str, float | None]:
        """{metric: value} for one image pair (None where the metric cannot apply; see :meth:`evaluate`)."""
        return self.evaluate(sr, hr)[0]


def match_outputs(
    hr: dict[str, Path], sr_dir: str | os.PathLike[str], sizes: dict[str, tuple[int, int]] | None = None
) -> list[tuple[str, Path, Path]]:
    """(stem, sr, hr) for every reference file of ``hr`` {stem: path}; DatasetError listing missing, extra
    and mis-sized SR files of ``sr_dir`` (files pair by stem). ``sizes``: expected (H, W) per stem when the
    references are not HR images (LR-only sets); default the size of each ``hr`` file."""
    sr = list_images(sr_dir, "SR folder")
    missing, extra = sorted(set(hr) - set(sr)), sorted(set(sr) - set(hr))
    sized = []
    for stem in sorted(set(hr) & set(sr)):
        a, b = image_size(sr[stem]), (sizes[stem] if sizes is not None else image_size(hr[stem]))
        if a != b:
            sized.append(f"{sr[stem].name} {a[0]}x{a[1]} vs expected {b[0]}x{b[1]}")
    if missing or extra or sized:
        parts = []
        if missing:
            parts.append(f"{len(missing)} HR image(s) without an output in {sr_dir}: {missing[:10]}")
        if extra:
            parts.append(f"{len(extra)} output(s) without an HR image: {extra[:10]}")
        if sized:
            parts.append(f"{len(sized)} mis-sized output(s): {sized[:10]}")
        raise DatasetError("SR outputs do not match the HR images (files pair by stem): " + "; ".join(parts))
    return [(s, sr[s], hr[s]) for s in sorted(hr)]


def summarize(per_image: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over images (finite values only; +inf PSNR of identical images is skipped).

    None (null in JSON) for a metric that applied to no image, NaN when it applied but gave no finite value.
    """
    names = dict.fromkeys(m for row in per_image.values() for m in row)
    means: dict[str, float | None] = {}
    for m in names:
        applied = [v for row in per_image.values() if (v := row.get(m)) is not None]
        vals = [v for v in applied if math.isfinite(v)]
        means[m] = sum(vals) / len(vals) if vals else (float("nan") if applied else None)
    return means


def score_items(items: list[tuple[str, Path, Path | None]], scorer: Scorer) -> dict[str, object]:
    """Score (stem, sr, hr-or-None) files. Returns {count, mean, per_image, not_applicable}, the last one
    {stem: {metric: reason}} for the metrics that are None on that image."""
    per_image: dict[str, dict[str, float | None]] = {}
    not_applicable: dict[str, dict[str, str]] = {}
    for stem, sr, hr in items:
        per_image[stem], reasons = scorer.evaluate(read_image(sr), None if hr is None else read_image(hr))
        if reasons:
            not_applicable[stem] = reasons
    return {
        "count": len(per_image),
        "mean": summarize(per_image),
        "per_image": per_image,
        "not_applicable": not_applicable,
    }


def not_applicable_notes(results: dict[str, dict[str, object]]) -> str:
    """Markdown lines explaining the n/a cells: per method and metric, how many images and why.

    ``results``: {method: a :func:`score_items` result}. Empty string when every metric applied.
    """
    lines = []
    for method, result in results.items():
        count = result.get("count", 0)
        grouped: dict[tuple[str, str], int] = {}
        for reasons in result.get("not_applicable", {}).values():  # type: ignore[union-attr]
            for metric, reason in reasons.items():
                grouped[(metric, reason)] = grouped.get((metric, reason), 0) + 1
        for (metric, reason), n in grouped.items():
            lines.append(
                f"- {method}: {metric} not computed on {n} of {count} image(s) (n/a; means use the "
                f"others): {reason}"
            )
    return "\nNot applicable:\n\n" + "\n".join(lines) + "\n" if lines else ""


def score_folders(
    hr_dir: str | os.PathLike[str] | None, sr_dir: str | os.PathLike[str], scorer: Scorer
) -> dict[str, object]:
    """Score every image of ``sr_dir`` against ``hr_dir`` (no-reference metrics only when it is None)."""
    if hr_dir is None:
        items: list[tuple[str, Path, Path | None]] = [
            (s, p, None) for s, p in list_images(sr_dir, "SR folder").items()
        ]
    else:
        items = list(match_outputs(list_images(hr_dir, "HR folder"), sr_dir))
    return score_items(items, scorer)


def markdown_table(
    rows: dict[str, dict[str, float | None]],
    metrics: tuple[str, ...] | None = None,
    extra: dict[str, dict[str, str]] | None = None,
) -> str:
    """Markdown table: one row per method, one column per metric (arrow = better direction; n/a: the
    metric applied to none of the images, see :func:`not_applicable_notes`)."""
    metrics = metrics or tuple(dict.fromkeys(m for r in rows.values() for m in r))
    extra_cols = tuple(dict.fromkeys(c for r in (extra or {}).values() for c in r))
    head = ["method", *(f"{m} {'↓' if lower_better(m) else '↑'}" for m in metrics), *extra_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, vals in rows.items():
        cells = [("n/a" if vals[m] is None else f"{vals[m]:.4f}") if m in vals else "-" for m in metrics]
        cells += [(extra or {}).get(method, {}).get(c, "-") for c in extra_cols]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines) + "\n"
