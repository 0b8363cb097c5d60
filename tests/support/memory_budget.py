"""A device with little memory, for tests: every new tensor larger than a budget raises ``torch.OutOfMemoryError``.

Implemented as a ``TorchDispatchMode``, i.e. below the networks and the cores, where ATen hands out tensors:
whatever code path allocates an activation bigger than ``max_bytes`` (a conv output, an upsampled map, an
attention matrix) fails exactly as a CUDA allocation would, while views of existing tensors (no new storage)
pass. Nothing in the code under test is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass
class BudgetLog:
    """What the budget saw: the largest new tensor that passed, and each refused request (bytes)."""

    largest: int = 0
    refused: list[int] = field(default_factory=list)


class _Budget(TorchDispatchMode):
    def __init__(self, max_bytes: int, log: BudgetLog) -> None:
        super().__init__()
        self.max_bytes, self.log = max_bytes, log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs or {}))[0]
            if isinstance(t, torch.Tensor)
        }
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.untyped_storage().data_ptr() in inputs:
                continue  # a view or an in-place result: no new allocation
            size = t.untyped_storage().nbytes()
            if size > self.max_bytes:
                self.log.refused.append(size)
                raise torch.OutOfMemoryError(
                    f"simulated: tried to allocate {size} bytes, budget {self.max_bytes} ({func})"
                )
            self.log.largest = max(self.log.largest, size)
        return out


@contextmanager
def memory_budget(max_bytes: int) -> Iterator[BudgetLog]:
    """Inside the block, any op whose new output tensor exceeds ``max_bytes`` raises ``torch.OutOfMemoryError``."""
    log = BudgetLog()
    with _Budget(max_bytes, log):
        yield log
