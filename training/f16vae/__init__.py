"""F16 decoder trainer: fine-tune the F16 VAE's decoder from FLUX VAE weights (docs/training_f16vae.md).

``config`` (F16VAETrainConfig), ``data`` (HR crops), ``model`` (frozen encoder + trainable decoder part),
``export`` (diffusers-layout safetensors with ``sr4k.op4ksr`` metadata), ``main`` (the accelerate loop and CLI).
"""

from .config import F16VAETrainConfig, load_train_config
from .export import export_f16_vae, read_settings

__all__ = ["F16VAETrainConfig", "export_f16_vae", "load_train_config", "read_settings"]
