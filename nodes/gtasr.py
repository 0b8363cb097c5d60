"""The GTASR nodes, under the module name they had before the split (kept for imports of ``sr4k.nodes.gtasr``).

``GTASR_LoadModel`` lives in :mod:`.gtasr_loader`, ``GTASR_Upscale`` in :mod:`.gtasr_upscale`, its
out-of-memory advice in :mod:`.gtasr_advice`.
"""

from __future__ import annotations

from .gtasr_advice import oom_advice, oom_message
from .gtasr_loader import (
    DOWNLOAD_ENTRY,
    FOLDER,
    PRECISIONS,
    GTASRModel,
    LoadModel,
    model_options,
    resolve_model_file,
    weight_dtype,
)
from .gtasr_upscale import PROGRESS_UNITS, SEED_MAX, TARGETS, TILING, Upscale, fits_patch_free

__all__ = [
    "DOWNLOAD_ENTRY",
    "FOLDER",
    "PRECISIONS",
    "PROGRESS_UNITS",
    "SEED_MAX",
    "TARGETS",
    "TILING",
    "GTASRModel",
    "LoadModel",
    "Upscale",
    "fits_patch_free",
    "model_options",
    "oom_advice",
    "oom_message",
    "resolve_model_file",
    "weight_dtype",
]
