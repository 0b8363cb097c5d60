"""ComfyUI run-time services: out-of-memory recognition and cancel checks (whose form differs across versions), and
where a node's result goes.

- ``is_oom``: ComfyUI 0.33 has ``model_management.is_oom`` (it counts ``torch.AcceleratorError`` OOMs and
  clears the pending CUDA error); 0.3.75 has only ``OOM_EXCEPTION``. Use it in ``except Exception as e:``
  and re-raise what it rejects.
- ``check_cancel``: raises ``InterruptProcessingException`` when the user pressed Cancel. ComfyUI checks
  for cancel only when a progress update is sent, and 0.33 throttles those updates, so long stages call
  this explicitly between stages and tiles.
- ``to_intermediate``: a node's output on ComfyUI's intermediate device (the host, unless started with
  ``--gpu-only``), copied from CUDA through pinned memory.
"""

from __future__ import annotations

import comfy.model_management as mm
import torch

from ..srkit import perf
from ..srkit.oom import is_oom as _torch_is_oom
from ..srkit.transfer import to_host


def is_oom(err: BaseException) -> bool:
    """ComfyUI's own OOM test where this version has one, else torch's OOM types (plus accelerator OOMs)."""
    core = getattr(mm, "is_oom", None)
    if core is not None:
        return bool(core(err))
    return isinstance(err, mm.OOM_EXCEPTION) or _torch_is_oom(err)


def to_intermediate(image: torch.Tensor) -> torch.Tensor:
    """``image`` on ``intermediate_device()``; to the host from CUDA as one DMA into pinned memory (as the
    ``pinned_output`` option says), not a copy staged through pageable memory."""
    target = mm.intermediate_device()
    if target.type == "cpu":
        return to_host(image, pinned=perf.current().pinned_output)
    return image.to(target)


def check_cancel() -> None:
    """Raise ComfyUI's ``InterruptProcessingException`` if the current prompt was cancelled."""
    mm.throw_exception_if_processing_interrupted()
