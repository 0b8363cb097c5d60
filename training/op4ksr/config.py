"""Configuration of the OP4KSR LoRA trainer: one frozen dataclass, loadable from TOML/JSON + CLI overrides.

The paper gives no training recipe (docs/op4ksr.md §5, §11); the defaults follow the engineering fallback
of §11 and Appendix D: LoRA on the FLUX transformer, the LR latent fed directly at t* = 0.5 (calibrate it
with ``sr4k calibrate-tstar``), crops placed in the 4096-px output canvas, RFR on the h/w axes, and the
default loss recipe latent MSE + LPIPS + L_AP (``srkit.periodicity``) on the ``difference`` domain (only
periodicity in excess of the HR's, so real bricks and fabric are not penalised). See docs/training_op4ksr.md.

Losses (each weight 0 disables the term; pixel terms need one decoder pass per step):
  latent_weight     ``latent_loss`` (mse | l1) between x0 and the F16 latent of HR (model space);
  pixel_weight      ``pixel_loss`` (mse | l1) between the decoded SR and HR, both in [-1, 1];
  perceptual_weight LPIPS-VGG(SR, HR) in [-1, 1] (``perceptual='lpips'``: local VGG16 weights, never a
                    download; ``'standin'``: multi-scale L1, NOT LPIPS, for CPU smoke runs; or a callable);
  lambda_ap         L_AP on the decoded SR in [0, 1] (vs HR for the ``ap.domain`` residual/difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ...op4ksr_core.onestep import DEFAULT_INPUT_MODE, DEFAULT_T_STAR, OneStepConfig
from ...op4ksr_core.rfr import SPATIAL_AXES, RFRConfig
from ...op4ksr_core.settings import AUTO, OP4KSRSettings
from ...op4ksr_core.vae.config import DECODE_MODES
from ...srkit.degradations import PRESETS as DEGRADATION_PRESETS
from ...srkit.periodicity import PeriodicityConfig
from ..common import build_dataclass, check_loop_settings, load_config_file, merge_settings, parse_overrides
from .lora import DEFAULT_DOUBLE_TARGETS, DEFAULT_SINGLE_TARGETS, check_targets

__all__ = [
    "DTYPES",
    "MIXED_PRECISION",
    "OP4KSRTrainConfig",
    "load_train_config",
]


DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
MIXED_PRECISION: tuple[str, ...] = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class OP4KSRTrainConfig:
    """Every setting of an OP4KSR LoRA run (see the module docstring for the losses)."""

    # Models (BFL/ComfyUI or diffusers keys; the VAE file is the FLUX VAE, used with F16 geometry).
    flux_path: str = ""
    vae_path: str = ""
    decode_mode: Literal["auto", "partitioned", "aligned"] = "auto"  # auto: VAE metadata, else by key layout
    axes_dims_rope: tuple[int, ...] = ()  # () = FLUX.1's split, read off the head dim
    base_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # LoRA (PEFT); targets are block-relative module paths (lora.py).
    lora_rank: int = 64
    lora_alpha: float = 64.0
    lora_dropout: float = 0.0
    lora_double_targets: tuple[str, ...] = DEFAULT_DOUBLE_TARGETS
    lora_single_targets: tuple[str, ...] = DEFAULT_SINGLE_TARGETS
    # One-step update and RoPE (as at inference: op4ksr_core.onestep / rfr).
    t_star: float = DEFAULT_T_STAR  # sr4k calibrate-tstar gives the value for your data
    input_mode: Literal["flow", "direct"] = DEFAULT_INPUT_MODE
    guidance: float = 3.5
    rfr: RFRConfig = field(default_factory=RFRConfig)
    # Data: HR folder + on-the-fly degradation, or HR + LR folders (paired mode when lr_dir is set).
    data_dir: str = ""
    lr_dir: str = ""
    crop_size: int = 1024
    # Output canvas the crops are placed in (ids and RFR grid as at this inference size; canvas.py).
    # = crop_size: the crop is the canvas (full-frame training, or the unplaced behaviour).
    canvas_long_side: int = 4096
    scale: int = 4
    degradation: str = "realesrgan"
    num_workers: int = 4
    # Losses.
    latent_loss: Literal["mse", "l1"] = "mse"
    latent_weight: float = 1.0
    pixel_loss: Literal["mse", "l1"] = "l1"
    pixel_weight: float = 0.0
    perceptual: Literal["none", "lpips", "standin"] = "lpips"
    perceptual_weight: float = 1.0
    vgg16_weights: str = ""  # LPIPS trunk file; "" = torch hub cache (vgg16-397923af.pth)
    lambda_ap: float = 0.1
    ap: PeriodicityConfig = field(default_factory=lambda: PeriodicityConfig(domain="difference"))
    # Optimisation.
    lr: float = 1e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float = 1.0
    steps: int = 10_000
    batch_size: int = 1
    grad_accum: int = 1
    gradient_checkpointing: bool = True
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    ema_decay: float = 0.0  # 0: no EMA; else the exported LoRA holds the EMA weights
    seed: int = 0
    # Bookkeeping.
    output_dir: str = "runs/op4ksr"
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    export_every: int = 0  # 0: export the LoRA only at the end
    export_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    resume: str = ""  # "" | "latest" | a checkpoint folder
    report_to: str = ""  # an accelerate tracker: "tensorboard", "wandb", ... ("" = logging only)

    def __post_init__(self) -> None:
        self.one_step()  # validates t_star / input_mode / guidance
        if len(self.axes_dims_rope) not in (0, 3) or any(d <= 0 or d % 2 for d in self.axes_dims_rope):
            raise ValueError(
                f"axes_dims_rope={self.axes_dims_rope}: give () or three even dims, e.g. (16, 56, 56)"
            )
        if self.decode_mode not in (AUTO, *DECODE_MODES):
            raise ValueError(f"decode_mode={self.decode_mode!r}: choose one of {(AUTO, *DECODE_MODES)}")
        for name, allowed in (
            ("base_dtype", DTYPES),
            ("export_dtype", DTYPES),
            ("mixed_precision", MIXED_PRECISION),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: choose one of {allowed}")
        if self.lora_rank < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise ValueError(
                f"lora_rank={self.lora_rank}, lora_alpha={self.lora_alpha}, lora_dropout={self.lora_dropout}: "
                "need rank >= 1, alpha > 0, 0 <= dropout < 1 (e.g. 64, 64.0, 0.0)"
            )
        check_targets(self.lora_double_targets, self.lora_single_targets)
        if self.scale < 1 or self.crop_size < 1 or self.crop_size % self.scale:
            raise ValueError(
                f"crop_size={self.crop_size} must be a positive multiple of scale={self.scale} "
                f"(e.g. {max(1, self.crop_size // max(self.scale, 1)) * max(self.scale, 1)})"
            )
        if self.canvas_long_side < self.crop_size:
            raise ValueError(
                f"canvas_long_side={self.canvas_long_side} is smaller than crop_size={self.crop_size}; the canvas "
                "is the inference output the crops are cut from (4096 for 4K; = crop_size for full frames)"
            )
        if self.degradation not in DEGRADATION_PRESETS:
            raise ValueError(f"degradation={self.degradation!r}: choose one of {sorted(DEGRADATION_PRESETS)}")
        self._check_losses()
        self._check_optimisation()

    def _check_losses(self) -> None:
        weights = {
            k: getattr(self, k) for k in ("latent_weight", "pixel_weight", "perceptual_weight", "lambda_ap")
        }
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise ValueError(f"loss weights {negative} are negative; use weights >= 0 (0 disables a term)")
        if not any(v > 0 for v in weights.values()):
            raise ValueError(f"all loss weights are 0 ({weights}); set e.g. latent_weight = 1.0")
        if self.lambda_ap > 0 and self.crop_size < 2 * self.ap.max_lag:
            raise ValueError(
                f"lambda_ap > 0 needs crop_size >= {2 * self.ap.max_lag} px for lags up to {self.ap.max_lag} px "
                f"(ap.periods={self.ap.periods}, ap.harmonics={self.ap.harmonics}); raise crop_size or lower those"
            )
        if self.perceptual_weight > 0 and self.perceptual == "none":
            raise ValueError(
                "perceptual_weight > 0 needs perceptual = 'lpips' or 'standin' (or pass perceptual= "
                "to train()); or set perceptual_weight = 0"
            )

    def _check_optimisation(self) -> None:
        check_loop_settings(self)

    @property
    def needs_decode(self) -> bool:
        """Whether a step decodes x0 to pixels (any pixel-space loss is on)."""
        return self.pixel_weight > 0 or self.perceptual_weight > 0 or self.lambda_ap > 0

    def one_step(self) -> OneStepConfig:
        return OneStepConfig(t_star=self.t_star, input_mode=self.input_mode, guidance=self.guidance)

    def unstorable_rfr(self) -> str | None:
        """What of ``rfr`` the weights' metadata cannot hold (it has one whole reference side and no axes), said
        as a warning for the start of the run; None when everything is carried."""
        ref = self.rfr.reference_grid
        square = ref[0] == ref[1] and float(ref[0]).is_integer()
        if self.rfr.mode == "none" or (square and self.rfr.axes == SPATIAL_AXES):
            return None
        return (
            f"rfr.reference_grid={ref} and rfr.axes={self.rfr.axes} cannot be stored in the weights' metadata (it "
            f"holds one whole reference side and no axes), so the nodes and the CLI will run these weights with "
            f"their defaults there (64 x 64 reference tokens, axes {SPATIAL_AXES}). To run them as trained, pass the "
            "same RFRConfig through the Python API (op4ksr_core.flux.forward.set_rfr)."
        )

    def settings(self, decode_mode: str) -> OP4KSRSettings:
        """The inference settings this run trains for (written into the exported weights' metadata; what it cannot
        hold: :meth:`unstorable_rfr`)."""
        ref = self.rfr.reference_grid
        square = ref[0] == ref[1] and float(ref[0]).is_integer()  # the nodes take one whole reference side
        return OP4KSRSettings(
            t_star=self.t_star,
            input_mode=self.input_mode,
            rfr_mode=self.rfr.mode,
            rfr_alpha=self.rfr.alpha,
            reference_tokens=int(ref[0]) if square else None,
            decode_mode=decode_mode,
            canvas_long_side=self.canvas_long_side,
            guidance=self.guidance,
        )


def load_train_config(path: str | None = None, overrides: Sequence[str] = ()) -> OP4KSRTrainConfig:
    """Config from an optional TOML/JSON file with ``--key value`` overrides on top (nested: ``--rfr.mode``)."""
    data = load_config_file(path) if path else {}
    return build_dataclass(OP4KSRTrainConfig, merge_settings(data, parse_overrides(overrides)))
