"""GTASR two-stage trainer (``python -m sr4k.training.gtasr``; the entry point is in ``main``).

``config`` (GTASRTrainConfig, presets), ``data`` (crops, on-the-fly degradation), ``schedule`` (power-law
schedule, q_sample), ``losses`` (CT, TA, DTM/Stab, Rect), ``perceptual`` (LPIPS-VGG), ``steps`` (one
stage-I/II loss evaluation), ``export`` (BasicSR/safetensors weights), ``main`` (the loop and the CLI).
"""

from .main import Run, TrainResult, lr_at, main, setup_run, train

__all__ = ["Run", "TrainResult", "lr_at", "main", "setup_run", "train"]
