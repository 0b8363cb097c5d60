"""ComfyUI run-time services whose form differs across versions: out-of-memory recognition and cancel checks.

- ``is_oom``: ComfyUI 0.33 has ``model_management.is_oom`` (it counts ``torch.AcceleratorError`` OOMs and
  clears the pending CUDA error); 0.3.75 has only ``OOM_EXCEPTION``. Use it in ``except Exception as e:``
  and re-raise what it rejects.
- ``check_cancel``: raises ``InterruptProcessingException`` when the user pressed Cancel. ComfyUI checks
  for cancel only when a progress update is sent, and 0.33 throttles those updates, so long stages call
  this explicitly between stages and tiles.
"""

from __future__ import annotations

import comfy.model_management as mm

from ..srkit.oom import is_oom as _torch_is_oom


def is_oom(err: BaseException) -> bool:
    """ComfyUI's own OOM test where this version has one, else torch's OOM types (plus accelerator OOMs)."""
    core = getattr(mm, "is_oom", None)
    if core is not None:
        return bool(core(err))
    return isinstance(err, mm.OOM_EXCEPTION) or _torch_is_oom(err)


def check_cancel() -> None:
    """Raise ComfyUI's ``InterruptProcessingException`` if the current prompt was cancelled."""
    mm.throw_exception_if_processing_interrupted()
