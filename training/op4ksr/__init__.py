"""OP4KSR LoRA trainer (``python -m sr4k.training.op4ksr``; the entry point is in ``main``).

``config`` (OP4KSRTrainConfig), ``data`` (degraded or paired crops), ``lora`` (PEFT LoRA on the FLUX
transformer, ComfyUI export), ``step`` (the one-step model and its losses), ``main`` (the loop and the CLI).
"""

from .main import TrainResult, load_transformer, load_vae, main, make_dataset, train

__all__ = ["TrainResult", "load_transformer", "load_vae", "main", "make_dataset", "train"]
