"""GTASR trainer configuration: one frozen dataclass, released defaults, named presets, file + CLI overrides.

Defaults are the released stage-I recipe (docs/gtasr.md §7, ``options/train/ctmsr_train.yml``);
``stage2`` is the released second phase; ``tiny``/``tiny_stage2`` shrink everything for CPU tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...gtasr_core import PRESETS as NET_PRESETS
from ...gtasr_core import GTASRConfig
from ...gtasr_core.config import TINY
from ...srkit.degradations import PRESETS as DEGRADATION_PRESETS
from ..common import build_dataclass, load_config_file, merge_settings
from .losses import DTM_WEIGHTINGS
from .perceptual import PERCEPTUAL_CHOICES
from .schedule import dtm_index_range

__all__ = [
    "DEGRADATIONS",
    "GTASRTrainConfig",
    "NETWORKS",
    "PRESETS",
    "RECT_MODES",
    "TINY_NET",
    "describe",
    "preset_name",
    "resolve_config",
]

TINY_NET = TINY  # the architecture at toy size, for CPU tests and smoke runs
NETWORKS: dict[str, GTASRConfig] = {**NET_PRESETS, "tiny": TINY_NET}
RECT_MODES = ("released", "figure")
DEGRADATIONS = (*DEGRADATION_PRESETS, "bicubic")


@dataclass(frozen=True)
class GTASRTrainConfig:
    """All settings of one GTASR training stage (released stage-I values as defaults)."""

    stage: int = 1
    network: str = "released"  # NETWORKS key
    # ---- data: HR crops from image folders, degraded on the fly (Real-ESRGAN pipeline, srkit)
    data_dirs: tuple[str, ...] = ()
    image_exts: tuple[str, ...] = ("jpeg", "jpg", "png")
    gt_size: int = 256  # HR crop side (LR = gt_size / scale)
    degradation: str = "gtasr"  # srkit.degradations preset, or "bicubic" (clean pairs)
    num_workers: int = 4
    # ---- optimisation (both stages: AdamW 5e-5, betas (0.9, 0.9), wd 0, MultiStepLR 50k x0.5, EMA 0.999)
    batch_size: int = 8  # per process; released 4 GPUs x 8 (stage I), 2 x 6 (stage II)
    total_steps: int = 500_000
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.9)
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = (50_000,)
    lr_gamma: float = 0.5
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # released fp32; accelerate's "bf16"/"fp16" also accepted
    seed: int = 0
    # ---- schedule s_i = (i/(N-1))^power; N-1 intervals decrease linearly start -> end over total_steps
    power: float = 2.5
    start_intervals: int = 4
    end_intervals: int = 3
    ct_index_cap: int = 0  # 0: n ~ U{0..N-2}; stage II released min(3, N-1) -> 3
    # ---- losses (consistency_opt.loss_opt: shared by CT and TA)
    lpips_weight: float = 0.5
    charbonnier_weight: float = 0.5
    charbonnier_eps: float = 1e-12
    ta_weight: float = 0.5  # stage I only (code default TA_weight)
    # ---- stage II (DTM + Stab + Rect with a frozen, periodically re-synchronised copy D_phi)
    init_checkpoint: str = ""  # stage-I BasicSR .pth (released GTASR_first_phase.pth)
    init_student_key: str = "params"  # released: net_g <- params (pretrain_network_g default key)
    init_ema_key: str = "params_ema"  # net_g_ema <- params_ema
    frozen_init_key: str = "params_ema"  # D_phi <- params_ema (Stab_Rect_opt.model_path)
    resync_every: int = 1000  # D_phi <- online student at steps k % resync_every == 0; 0 never
    dtm_scale: float = 0.8  # 0.5 x 1.6, hard-coded in the release
    stab_coef: float = 0.2  # Sobel mix into the DTM target, hard-coded
    dtm_weighting: str = "improved"
    dtm_t_min: float = 0.1
    dtm_t_max: float = 0.5
    rect_weight: float = 1.0
    rect_mode: str = "released"  # "released": LPIPS(S(x0_fake), S(x0)), no gradient;
    #                                           "figure": LPIPS(S(x^0), S(x0)), gradient into the student
    # ---- perceptual distance
    perceptual: str = "lpips_vgg"  # or "standin" (NOT LPIPS; tests/smoke runs only)
    vgg16_weights: str = ""  # default: torch hub cache vgg16-397923af.pth
    # ---- output
    output_dir: str = "runs/gtasr_stage1"
    save_every: int = 50_000
    keep_checkpoints: int = 0  # newest checkpoint folders kept (0 = all)
    log_every: int = 100
    resume: str = ""  # "" fresh, "latest", or a checkpoint-<step> folder

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"stage={self.stage} must be 1 (CT + TA) or 2 (CT + DTM/Stab + Rect)")
        if self.network not in NETWORKS:
            raise ValueError(f"network={self.network!r} is unknown; choose from {sorted(NETWORKS)}")
        self._check_choices()
        self._check_numbers()
        net = NETWORKS[self.network]
        if self.gt_size % net.hr_multiple:
            raise ValueError(
                f"gt_size={self.gt_size} must be a multiple of {net.hr_multiple} for network "
                f"{self.network!r} (LR multiple {net.lr_multiple} x scale {net.scale})"
            )
        if (
            self.degradation in DEGRADATION_PRESETS
            and DEGRADATION_PRESETS[self.degradation].scale != net.scale
        ):
            raise ValueError(
                f"degradation {self.degradation!r} has scale "
                f"{DEGRADATION_PRESETS[self.degradation].scale}, the network {net.scale}"
            )
        if self.stage == 2:
            dtm_index_range(self.start_intervals + 1, self.dtm_t_min, self.dtm_t_max)
            if self.start_intervals != self.end_intervals:
                raise ValueError(
                    f"stage 2 uses a fixed schedule; set start_intervals = end_intervals "
                    f"(released 3), got {self.start_intervals} -> {self.end_intervals}"
                )

    def _check_choices(self) -> None:
        choices = {
            "degradation": (self.degradation, DEGRADATIONS),
            "rect_mode": (self.rect_mode, RECT_MODES),
            "perceptual": (self.perceptual, PERCEPTUAL_CHOICES),
            "dtm_weighting": (self.dtm_weighting, DTM_WEIGHTINGS),
            "mixed_precision": (self.mixed_precision, ("no", "bf16", "fp16")),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is unknown; choose from {tuple(allowed)}")

    def _check_numbers(self) -> None:
        positive = {
            "batch_size": self.batch_size,
            "total_steps": self.total_steps,
            "lr": self.lr,
            "gt_size": self.gt_size,
            "save_every": self.save_every,
            "log_every": self.log_every,
            "power": self.power,
            "lr_gamma": self.lr_gamma,
            "charbonnier_eps": self.charbonnier_eps,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name}={value} must be > 0")
        nonneg = {
            "weight_decay": self.weight_decay,
            "num_workers": self.num_workers,
            "ct_index_cap": self.ct_index_cap,
            "lpips_weight": self.lpips_weight,
            "charbonnier_weight": self.charbonnier_weight,
            "ta_weight": self.ta_weight,
            "resync_every": self.resync_every,
            "dtm_scale": self.dtm_scale,
            "stab_coef": self.stab_coef,
            "rect_weight": self.rect_weight,
            "keep_checkpoints": self.keep_checkpoints,
        }
        for name, value in nonneg.items():
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay} must be in [0, 1) (released 0.999)")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas={self.betas} must lie in [0, 1) (released (0.9, 0.9))")
        if not 1 <= self.end_intervals <= self.start_intervals:
            raise ValueError(
                f"need 1 <= end_intervals <= start_intervals, got {self.start_intervals} -> "
                f"{self.end_intervals} (released stage I 4 -> 3, stage II 3 -> 3)"
            )
        if list(self.lr_milestones) != sorted(self.lr_milestones) or any(m < 1 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones={self.lr_milestones} must be increasing steps >= 1")

    @property
    def network_config(self) -> GTASRConfig:
        """The GTASRConfig of the network being trained."""
        return NETWORKS[self.network]


_STAGE1 = GTASRTrainConfig()
_STAGE2 = dataclasses.replace(
    _STAGE1,
    stage=2,
    batch_size=6,
    total_steps=2000,
    power=1.0,
    start_intervals=3,
    end_intervals=3,
    ct_index_cap=3,
    save_every=500,
    output_dir="runs/gtasr_stage2",
)
_TINY = {
    "network": "tiny",
    "gt_size": 32,
    "degradation": "bicubic",
    "num_workers": 0,
    "batch_size": 4,
    "lr": 2e-3,
    "lr_milestones": (),
    "ema_decay": 0.9,
    "perceptual": "standin",
    "log_every": 1,
}
PRESETS: dict[str, GTASRTrainConfig] = {
    "stage1": _STAGE1,
    "stage2": _STAGE2,
    "tiny": dataclasses.replace(
        _STAGE1, **_TINY, total_steps=80, save_every=40, output_dir="runs/gtasr_tiny1"
    ),
    "tiny_stage2": dataclasses.replace(
        _STAGE2, **_TINY, total_steps=40, save_every=20, resync_every=10, output_dir="runs/gtasr_tiny2"
    ),
}


def preset_name(stage: int, preset: str | None = None) -> str:
    """Preset for a stage: default ``stage<N>``; ``tiny`` means ``tiny_stage2`` for stage 2."""
    name = preset or f"stage{stage}"
    if name == "tiny" and stage == 2:
        name = "tiny_stage2"
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    if PRESETS[name].stage != stage:
        raise ValueError(
            f"preset {name!r} is a stage-{PRESETS[name].stage} preset, but --stage {stage} was "
            f"given; use --preset stage{stage} (or tiny)"
        )
    return name


def resolve_config(
    stage: int,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GTASRTrainConfig:
    """preset <- config file (TOML/JSON, flat keys; may name a ``preset``) <- CLI overrides."""
    settings: dict[str, Any] = dict(load_config_file(config_file)) if config_file else {}
    preset = settings.pop("preset", None) if preset is None else preset
    settings.pop("preset", None)
    settings = merge_settings(settings, dict(overrides or {}))
    if "stage" in settings and settings["stage"] != stage:
        raise ValueError(f"the config sets stage={settings['stage']} but --stage {stage} was given")
    base = dataclasses.asdict(PRESETS[preset_name(stage, preset)])
    return build_dataclass(GTASRTrainConfig, merge_settings(base, settings))


def describe(
    config: GTASRTrainConfig,
    keys: Sequence[str] = ("stage", "network", "batch_size", "total_steps", "lr", "perceptual"),
) -> str:
    """A one-line summary for the log."""
    return ", ".join(f"{k}={getattr(config, k)!r}" for k in keys)
