"""Configuration of the F16 decoder trainer: one frozen dataclass, loadable from TOML/JSON + CLI overrides.

Recipe (docs/training_f16vae.md): start from the FLUX.1 VAE weights used with F16 geometry
(op4ksr_core.vae), keep the encoder frozen, fine-tune the decoder's full-resolution tail (default) or more
of the decoder on HR crops with L1 + LPIPS, decoding in ``decode_mode`` (``partitioned``, Diffusion-4K's
SC-VAE convention, by default). The export is a diffusers-layout F16 VAE whose safetensors metadata carries
the decode mode it was trained with.

Train scopes (what gets gradients):
  tail        decoder.conv_norm_out + decoder.conv_out: the part after the last up block, which runs at
              full resolution after the nearest x2 (the F16-specific step; a few thousand parameters);
  last_block  the last up block (H/2 level) plus the tail;
  decoder     the whole decoder (SC-VAE's choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ...op4ksr_core.vae.config import DECODE_MODES
from ..common import build_dataclass, check_loop_settings, load_config_file, merge_settings, parse_overrides

__all__ = [
    "DTYPES",
    "MIXED_PRECISION",
    "PERCEPTUALS",
    "TRAIN_SCOPES",
    "F16VAETrainConfig",
    "load_train_config",
]

TRAIN_SCOPES: tuple[str, ...] = ("tail", "last_block", "decoder")
PERCEPTUALS: tuple[str, ...] = ("lpips_vgg", "standin", "none")
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
MIXED_PRECISION: tuple[str, ...] = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class F16VAETrainConfig:
    """Every setting of an F16 decoder fine-tune (see the module docstring for scopes)."""

    # Start point: FLUX VAE weights (BFL ae.safetensors, diffusers, or an earlier F16 export).
    vae_path: str = ""
    decode_mode: Literal["partitioned", "aligned"] = "partitioned"
    train_scope: Literal["tail", "last_block", "decoder"] = "tail"
    base_dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # the frozen part; trainable: float32
    sample_posterior: bool = True  # decode a posterior sample (as SC-VAE) rather than the mean
    # Data: a folder of HR images (>= crop_size on both sides), random crops and flips.
    data_dir: str = ""
    crop_size: int = 512
    hflip: bool = True
    num_workers: int = 2
    # Losses: l1_weight * L1(x_hat, x) + perceptual_weight * LPIPS(x_hat, x), images in [-1, 1].
    l1_weight: float = 1.0
    perceptual: Literal["lpips_vgg", "standin", "none"] = "lpips_vgg"
    perceptual_weight: float = 0.1
    vgg16_weights: str = ""  # torchvision vgg16-397923af.pth; "" = the torch hub cache
    # Optimisation.
    lr: float = 1e-4
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_clip: float = 1.0
    steps: int = 20_000
    batch_size: int = 4
    grad_accum: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = 0.0  # 0: no EMA; else the export holds the EMA weights
    seed: int = 0
    # Bookkeeping.
    output_dir: str = "runs/f16vae"
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    export_every: int = 0  # 0: export only at the end
    export_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    resume: str = ""  # "" | "latest" | a checkpoint folder
    report_to: str = ""  # an accelerate tracker ("" = logging only)

    def __post_init__(self) -> None:
        choices = {
            "decode_mode": DECODE_MODES,
            "train_scope": TRAIN_SCOPES,
            "perceptual": PERCEPTUALS,
            "base_dtype": DTYPES,
            "export_dtype": DTYPES,
            "mixed_precision": MIXED_PRECISION,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: choose one of {allowed}")
        if self.crop_size < 16 or self.crop_size % 16:
            raise ValueError(
                f"crop_size={self.crop_size}: use a multiple of 16 (the F16 latent cell), e.g. 512"
            )
        if self.l1_weight < 0 or self.perceptual_weight < 0:
            raise ValueError("l1_weight and perceptual_weight must be >= 0 (0 disables a term)")
        if self.l1_weight == 0 and (self.perceptual_weight == 0 or self.perceptual == "none"):
            raise ValueError("every loss is off; set l1_weight = 1.0")
        if self.perceptual_weight > 0 and self.perceptual == "none":
            raise ValueError("perceptual_weight > 0 needs perceptual = 'lpips_vgg' (or 'standin' for tests)")
        check_loop_settings(self)

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual != "none" and self.perceptual_weight > 0


def load_train_config(path: str | None = None, overrides: Sequence[str] = ()) -> F16VAETrainConfig:
    """Config from an optional TOML/JSON file with ``--key value`` overrides on top."""
    data = load_config_file(path) if path else {}
    return build_dataclass(F16VAETrainConfig, merge_settings(data, parse_overrides(overrides)))
