"""``LayoutAudit``: which aten ops break the channels_last (NHWC) layout of a forward pass (issue #11).

A layout break is an op that turns an NHWC image map into an NCHW one (or the reverse). Each costs a transpose
of the whole map: one read and one write of it, on top of the op's own work, and usually a second one when the
next cuDNN convolution (NHWC weights) transposes the map back. Recorded, for every non-view aten op:

- ``nhwc->nchw`` / ``nhwc->other``: a 4-D floating input is NHWC and a 4-D floating output is not (e.g. CUDA
  GroupNorm, which runs on ``input.contiguous()``; ``clone``/``contiguous`` of an NHWC map);
- ``nchw->nhwc``: an NCHW input and an NHWC output (an explicit conversion, or a mixed-layout elementwise op);
- ``conv fed NCHW``: a convolution whose input is NCHW while its weight is NHWC (cuDNN then transposes the
  input inside the call: the usual second half of a break). A 1x1 weight is both (``contiguous(channels_last)``
  keeps its strides), so a 1x1 conv runs in its input's layout: no break there, but its output stays NCHW;
- ``conv weight NCHW``: an NHWC input with an NCHW weight (a weight the layout switch did not convert);
  a convolution with an NHWC input and an NCHW output counts as ``nhwc->nchw``.

The layout of a 4-D tensor [N, C, H, W] is read from the order of the strides of C, H and W, ignoring dims of
size 1 or stride 0 (so slices and channel chunks of an NHWC map are still NHWC): ``both`` when that order fits
either layout (C == 1, or H == W == 1), ``other`` when it fits neither (e.g. a permuted token tensor).
``bytes_moved`` of a break = 2 x the converted map's bytes (a standalone transpose: read + write); 0 for an
allocation in the other layout (``alloc nchw``: ``new_zeros`` & co. of an NHWC map), which moves nothing itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["CONV_OPS", "Break", "LayoutAudit", "Row", "find_breaks", "layout_of", "summarize"]

CONV_OPS = frozenset(
    {
        "convolution",
        "_convolution",
        "conv2d",
        "cudnn_convolution",
        "cudnn_convolution_transpose",
        "mkldnn_convolution",
        "convolution_overrideable",
    }
)
_NCHW, _NHWC = (1, 2, 3), (2, 3, 1)  # dims outermost -> innermost


def layout_of(shape: Iterable[int], stride: Iterable[int]) -> str:
    """``nchw``, ``nhwc``, ``both`` or ``other``: the layout of a 4-D [N, C, H, W] tensor by its strides."""
    shape, stride = tuple(shape), tuple(stride)
    if len(shape) != 4:
        raise ValueError(f"layout_of needs a 4-D shape, got {shape}")
    dims = [d for d in (1, 2, 3) if shape[d] > 1 and stride[d] != 0]
    order = tuple(sorted(dims, key=lambda d: -stride[d]))  # stable: outermost first
    nchw = order == tuple(d for d in _NCHW if d in dims)
    nhwc = order == tuple(d for d in _NHWC if d in dims)
    return "both" if nchw and nhwc else "nchw" if nchw else "nhwc" if nhwc else "other"


def _layout(t: torch.Tensor) -> str:
    return layout_of(t.shape, t.stride())


def _maps(tensors: Iterable[object]) -> list[torch.Tensor]:
    """The 4-D floating tensors among ``tensors`` (the image maps a layout applies to)."""
    return [t for t in tensors if isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point()]


def is_attention(op: str) -> bool:
    """SDPA's ops: their 4-D tensors are [batch, heads, tokens, dim], not image maps (no layout applies)."""
    return "scaled_dot_product" in op


def find_breaks(op: str, inputs: list[object], outputs: list[object]) -> list[tuple[str, torch.Tensor]]:
    """(kind, converted map) of each layout break of one op (``op``: aten name without overload; ``inputs`` in
    argument order, the input map first for convolutions). At most one break per op."""
    if is_attention(op):
        return []
    ins, outs = _maps(inputs), _maps(outputs)
    if op in CONV_OPS:
        if len(ins) < 2:
            return []
        x, w = ins[0], ins[1]
        lx, lw = _layout(x), _layout(w)
        if lx == "nchw" and lw == "nhwc":
            return [("conv fed NCHW", x)]
        if lx == "nhwc" and lw == "nchw":
            return [("conv weight NCHW", w)]
        lo = _layout(outs[0]) if outs else "both"
        if lx == "nhwc" and lo in ("nchw", "other"):  # a kernel that dropped the layout
            return [(f"nhwc->{lo}", outs[0])]
        # Otherwise the output takes cuDNN's suggested layout (NHWC if input or weight is): no break.
        return []
    in_layouts = {_layout(t) for t in ins}
    # new_zeros & co. take the input only for dtype and device: an allocation in the other layout (its cost
    # shows where the map is next read, e.g. as "conv fed NCHW").
    alloc = op.startswith("new_")
    for out in outs:
        lo = _layout(out)
        if "nhwc" in in_layouts and lo in ("nchw", "other"):
            return [(f"alloc {lo}" if alloc else f"nhwc->{lo}", out)]
        if "nchw" in in_layouts and lo == "nhwc":
            return [("alloc nhwc" if alloc else "nchw->nhwc", out)]
    return []


@dataclass(frozen=True)
class Break:
    """One layout break: aten op, kind (see the module doc), module path, shape and dtype of the converted
    map, bytes a standalone transpose of it moves (read + write)."""

    op: str
    kind: str
    module: str
    shape: tuple[int, ...]
    dtype: str
    bytes_moved: int


@dataclass(frozen=True)
class Row:
    """Breaks of one (op, kind), or of one (op, kind, module): count, total bytes moved, number of distinct
    modules, the module with the most bytes, and the shape and dtype of the largest converted map."""

    op: str
    kind: str
    count: int
    bytes_moved: int
    modules: int
    module: str
    shape: tuple[int, ...]
    dtype: str


def summarize(breaks: Iterable[Break], by_module: bool = False) -> list[Row]:
    """Aggregate per (op, kind) (and module if ``by_module``), most bytes first."""
    groups: dict[tuple[str, ...], list[Break]] = {}
    for b in breaks:
        groups.setdefault((b.op, b.kind, b.module) if by_module else (b.op, b.kind), []).append(b)
    rows = []
    for (op, kind, *_), group in groups.items():
        per_module: dict[str, int] = {}
        for b in group:
            per_module[b.module] = per_module.get(b.module, 0) + b.bytes_moved
        top = max(per_module, key=lambda m: per_module[m])  # first seen on ties (dicts keep order)
        largest = max(group, key=lambda b: math.prod(b.shape))
        total = sum(b.bytes_moved for b in group)
        rows.append(Row(op, kind, len(group), total, len(per_module), top, largest.shape, largest.dtype))
    return sorted(rows, key=lambda r: (-r.bytes_moved, -r.count, r.op, r.kind, r.module))


class LayoutAudit(TorchDispatchMode):
    """Records a :class:`Break` for every layout break of the aten ops run while active.

    ``modules``: {label: root module}; a break's module path is ``label.qualified.name`` of the innermost
    module of those roots running at the time (via global forward pre/post hooks), ``-`` outside them.
    Also counts ``ops`` (non-view aten ops), ``map_ops`` (those touching a 4-D floating map) and ``nhwc_ops``
    (those with an NHWC input map), so a run without NHWC maps shows as such rather than as "no breaks".
    """

    def __init__(self, modules: dict[str, torch.nn.Module] | None = None) -> None:
        super().__init__()
        self.breaks: list[Break] = []
        self.ops = self.map_ops = self.nhwc_ops = 0
        self._names: dict[int, str] = {}
        for label, root in (modules or {}).items():
            for name, m in root.named_modules():
                self._names.setdefault(id(m), f"{label}.{name}" if name else label)
        self._stack: list[str] = []
        self._handles: list[Any] = []

    def __enter__(self) -> LayoutAudit:
        self._handles = [
            torch.nn.modules.module.register_module_forward_pre_hook(self._push),
            torch.nn.modules.module.register_module_forward_hook(self._pop),
        ]
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles = []

    def _push(self, module: torch.nn.Module, *_: object) -> None:
        if id(module) in self._names:
            self._stack.append(self._names[id(module)])

    def _pop(self, module: torch.nn.Module, *_: object) -> None:
        # Pop this module's own entry (robust to a forward that raised inside a child: hooks skipped there).
        name = self._names.get(id(module))
        if name is not None and name in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(name) :]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        returns = func._schema.returns
        alias = returns[0].alias_info if returns else None
        if alias is not None and not alias.is_write:
            return out  # a view: no data moves
        self.ops += 1
        op = func._overloadpacket.__name__
        if is_attention(op):
            return out
        ins = _maps(tree_flatten((args, kwargs))[0])
        outs = _maps(tree_flatten(out)[0])
        if not ins and not outs:
            return out
        self.map_ops += 1
        self.nhwc_ops += any(_layout(t) == "nhwc" for t in ins)
        for kind, t in find_breaks(op, ins, outs):
            where = self._stack[-1] if self._stack else "-"
            nbytes = 0 if kind.startswith("alloc") else 2 * t.numel() * t.element_size()
            self.breaks.append(
                Break(op, kind, where, tuple(t.shape), str(t.dtype).removeprefix("torch."), nbytes)
            )
        return out

    def rows(self, by_module: bool = False) -> list[Row]:
        return summarize(self.breaks, by_module)
