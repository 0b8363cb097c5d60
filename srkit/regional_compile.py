"""Regional ``torch.compile``: compile the repeated blocks of a network in place, one graph per block shape.

Compiling the repeated blocks rather than the whole network keeps the pieces that do not trace well (row-chunked
upsamplers with Python loops, chunked attention with ``out=`` GEMMs, slab heads) in eager mode, and lets every
instance of a block class reuse the graphs of the others: Dynamo caches graphs on the block's ``forward`` code,
with guards on input and weight shapes and strides, not on the module's identity. Inductor then fuses the
memory-bound work between the convolutions (GroupNorm statistics and normalisation, SiLU, residual adds, scales).

``nn.Module.compile`` is used (not ``torch.compile(module)``), so state-dict keys, hooks and ``isinstance`` checks
stay as they were. Each distinct (weight shapes, input shapes, memory layout) combination of one block class is
one cache entry on that class's ``forward``: a VAE or UNet has several channel widths and resolutions per image
size, which exceeds Dynamo's default limit of 8 entries per code object, and with ``fullgraph=True`` exceeding it
is an error. :func:`compile_blocks_of` therefore raises the limit to :data:`RECOMPILE_LIMIT` (process-wide).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["RECOMPILE_LIMIT", "compile_blocks_of", "compiled_modules", "raise_recompile_limit"]

# Cache entries per block-class forward. One image size needs one entry per distinct block shape (counted on
# the CPU: 10-11 graphs for the whole F16 VAE, 15 for the released GTASR); each memory layout doubles that and,
# with dynamic=False, each new image size adds as many again. 64 leaves room for a few sizes and both layouts;
# Dynamo's global cap (accumulated_recompile_limit, 256 by default) still bounds the total.
RECOMPILE_LIMIT = 64


def raise_recompile_limit(limit: int = RECOMPILE_LIMIT) -> int:
    """Raise Dynamo's per-code-object recompile limit to at least ``limit`` (never lowers it); returns it.

    The option is ``recompile_limit`` in torch >= 2.7 and ``cache_size_limit`` before (both exist as aliases in
    some versions; both are set where present).
    """
    cfg = torch._dynamo.config  # torch imports _dynamo lazily, on first use (not at our import)
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(int(getattr(cfg, name)), limit))
    return limit


def compile_blocks_of(
    root: nn.Module, block_types: tuple[type[nn.Module], ...], **compile_kwargs: Any
) -> list[nn.Module]:
    """``module.compile(**compile_kwargs)`` in place for every submodule of ``root`` that is an instance of
    ``block_types`` (outermost only: a matching block inside a compiled block is traced with it).

    ``fullgraph=True`` unless given, so a graph break is an error instead of a silent slowdown. Returns the
    compiled modules (an empty list is an error: the types do not occur in ``root``).
    """
    compile_kwargs.setdefault("fullgraph", True)
    blocks = _outermost(root, block_types)
    if not blocks:
        names = ", ".join(t.__name__ for t in block_types)
        raise TypeError(f"{type(root).__name__} contains no {names} blocks to compile")
    raise_recompile_limit()
    for block in blocks:
        block.compile(**compile_kwargs)
    return blocks


def compiled_modules(root: nn.Module) -> list[nn.Module]:
    """Submodules of ``root`` compiled in place by ``nn.Module.compile`` (for checks and logs)."""
    return [m for m in root.modules() if getattr(m, "_compiled_call_impl", None) is not None]


def _outermost(root: nn.Module, block_types: tuple[type[nn.Module], ...]) -> list[nn.Module]:
    found: list[nn.Module] = []

    def visit(children: Iterable[nn.Module]) -> None:
        for child in children:
            if isinstance(child, block_types):
                found.append(child)
            else:
                visit(child.children())

    visit([root])
    return found
