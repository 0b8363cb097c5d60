"""TF32 for float32 CUDA matrix products inside a block, whichever of torch's two TF32 switches is in use.

torch >= 2.9 has two ways to set it: the legacy ``torch.backends.cuda.matmul.allow_tf32`` and the newer
``fp32_precision`` attributes. Once any code in the process sets the newer one (other custom nodes, libraries),
reading the legacy flag raises "you have used mix of the legacy and new APIs" (checked on torch 2.13). So this
reads and sets the newer switch where it exists, and the legacy flag only on older torch; either way the
previous setting is restored, so the rest of the process sees no change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["tf32_matmul"]


@contextlib.contextmanager
def tf32_matmul() -> Iterator[None]:
    """float32 CUDA matmuls may use TF32 inside the block (the setting before is restored after)."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        old = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = old
    else:  # torch < 2.9
        old_flag = matmul.allow_tf32
        matmul.allow_tf32 = True
        try:
            yield
        finally:
            matmul.allow_tf32 = old_flag
