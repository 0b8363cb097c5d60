"""Out-of-memory recognition that does not depend on ComfyUI (the cores and the CLI use it).

torch raises ``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError``) for allocator failures, but an
out-of-memory inside a kernel or an asynchronous CUDA call surfaces as ``torch.AcceleratorError`` (torch
2.8+) with CUDA error code 2 ("out of memory"). ComfyUI 0.33's ``model_management.is_oom`` treats both as
OOM; this is the same rule for code that must not import ComfyUI. Nodes use ``nodes.runtime.is_oom``,
which prefers ComfyUI's own function (it also clears the pending CUDA error).
"""

from __future__ import annotations

import torch

__all__ = ["OOM_TYPES", "is_oom"]

OOM_TYPES: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)
_ACCELERATOR_ERROR: type[BaseException] | None = getattr(torch, "AcceleratorError", None)
_CUDA_ERROR_MEMORY_ALLOCATION = 2  # cudaErrorMemoryAllocation


def is_oom(err: BaseException) -> bool:
    """True for a torch out-of-memory error, or an accelerator error that reports running out of memory."""
    if isinstance(err, OOM_TYPES):
        return True
    if _ACCELERATOR_ERROR is not None and isinstance(err, _ACCELERATOR_ERROR):
        code = getattr(err, "error_code", None)
        return code == _CUDA_ERROR_MEMORY_ALLOCATION or "out of memory" in str(err).lower()
    return False
