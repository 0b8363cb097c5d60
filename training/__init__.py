"""Trainers for the sr4k models (headless; never imported by the ComfyUI nodes).

``common/``: shared helpers (config files with ``--key value`` overrides, trainable-only accelerate
checkpoints with resume, EMA). ``op4ksr/``: the OP4KSR LoRA trainer (``python -m sr4k.training.op4ksr``). ``gtasr/``: the
two-stage GTASR trainer (``python -m sr4k.training.gtasr``).
Training needs the ``train`` extra (peft, accelerate).
"""
