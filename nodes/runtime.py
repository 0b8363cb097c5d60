"""ComfyUI run-time services: out-of-memory recognition and cancel checks (whose form differs across versions), and
where a node's result goes.

- ``is_oom``: ComfyUI 0.33 has ``model_management.is_oom`` (it counts ``torch.AcceleratorError`` OOMs and
  clears the pending CUDA error); 0.3.75 has only ``OOM_EXCEPTION``. Use it in ``except Exception as e:``
  and re-raise what it rejects.
- ``check_cancel``: raises ``InterruptProcessingException`` when the user pressed Cancel. ComfyUI checks
  for cancel only when a progress update is sent, and 0.33 throttles those updates, so long stages call
  this explicitly between stages and tiles.
- ``intermediate_batch``: where a node collects the result images it makes one at a time: on ComfyUI's
  intermediate device (the host, unless started with ``--gpu-only``), one image copied from CUDA through pinned
  memory, a batch into one tensor (no concatenation copy).
"""

from __future__ import annotations

import comfy.model_management as mm

from ..srkit import perf
from ..srkit.oom import is_oom as _torch_is_oom
from ..srkit.transfer import ImageBatch


def is_oom(err: BaseException) -> bool:
    """ComfyUI's own OOM test where this version has one, else torch's OOM types (plus accelerator OOMs)."""
    core = getattr(mm, "is_oom", None)
    if core is not None:
        return bool(core(err))
    return isinstance(err, mm.OOM_EXCEPTION) or _torch_is_oom(err)


def intermediate_batch(count: int) -> ImageBatch:
    """Where a node collects its ``count`` result images: on ``intermediate_device()``, a single image through
    pinned memory (the ``pinned_output`` option), a batch copied into one tensor as each image finishes."""
    return ImageBatch(count, mm.intermediate_device(), pinned=perf.current().pinned_output)


def check_cancel() -> None:
    """Raise ComfyUI's ``InterruptProcessingException`` if the current prompt was cancelled."""
    mm.throw_exception_if_processing_interrupted()
