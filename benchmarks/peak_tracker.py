"""Peak-memory tracker: counts the device storages a block of real code creates, op by op (issue #11).

Run on the meta device it gives the peak of a 4K forward without a GPU and without data: every op output
is registered by its storage (views and in-place ops share one, so they cost nothing new), each storage's
bytes are rounded like the CUDA caching allocator's blocks (512 B) and subtracted by a ``weakref.finalize``
when the storage dies. At each new peak the live storages are snapshotted with the module path that made
them (global forward hooks keep a path stack) and the op.

Not seen: memory that no tensor owns (cuDNN/cuBLAS workspaces, which on CUDA come from the same caching
allocator and do count in ``torch.cuda.max_memory_allocated``), allocator fragmentation, and storages made
before the tracker starts (weights, caches: the benchmark's "allocated before").

    with PeakTracker("meta", root=net) as t:
        net(x)
    t.peak_bytes, t.top(10)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["BLOCK", "Alloc", "PeakTracker", "Workspace", "round_block", "track"]

BLOCK = 512  # CUDA caching allocator: every block is a multiple of 512 bytes

Workspace = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], int]
"""``(aten op, args, kwargs, output) -> bytes`` of scratch the op's kernel would allocate (0: none)."""


def round_block(nbytes: int, block: int = BLOCK) -> int:
    """Bytes the caching allocator hands out for a request of ``nbytes`` (0 stays 0: no block)."""
    return -(-nbytes // block) * block


@dataclass(frozen=True)
class Alloc:
    """One live storage: its bytes (rounded), the first tensor made on it and where."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    path: str  # module path (dots) of the innermost module running when it was made, "" outside any
    op: str  # the aten op that made it

    def describe(self) -> str:
        shape = "x".join(map(str, self.shape))
        return f"{self.nbytes / 2**30:7.3f} GiB  {shape} {str(self.dtype).removeprefix('torch.')}  {self.op} @ {self.path or '-'}"


class PeakTracker(TorchDispatchMode):
    """Live and peak bytes of the storages on ``device`` (type match: "meta", "cuda", "cpu") made inside.

    ``root``: module whose ``named_modules`` names the paths (other modules are named by class).
    ``label(name)`` adds a path element for code outside modules.
    """

    def __init__(
        self,
        device: str | torch.device,
        root: nn.Module | None = None,
        block: int = BLOCK,
        workspace: Workspace | None = None,
    ) -> None:
        super().__init__()
        self.device_type = torch.device(device).type
        self.block = block
        self.workspace = workspace
        self.live_bytes = 0
        self.peak_bytes = 0  # storages only
        self.peak_path = ""
        self.peak_snapshot: list[Alloc] = []
        # With a workspace model: the peak of storages plus the modelled scratch of the running op.
        self.peak_total = 0
        self.peak_total_path = ""
        self.peak_total_snapshot: list[Alloc] = []
        self.allocs = 0
        self._live: dict[int, Alloc] = {}  # keyed by the StorageImpl pointer (unique while alive)
        self._names = {id(m): n for n, m in root.named_modules()} if root is not None else {}
        self._stack: list[str] = []
        self._hooks: list[Any] = []

    # ---- module path stack ----------------------------------------------------------------------------

    def _push(self, module: nn.Module, *_: object) -> None:
        self._stack.append(self._names.get(id(module), type(module).__name__))

    def _pop(self, *_: object) -> None:
        if self._stack:
            self._stack.pop()

    def path(self) -> str:
        """The innermost running module's path (root-relative names are already full paths)."""
        return self._stack[-1] if self._stack else ""

    def label(self, name: str) -> _Label:
        """Context manager: ``name`` as the path of what is made inside (e.g. "upscale.noise")."""
        return _Label(self, name)

    def __enter__(self) -> PeakTracker:
        reg = torch.nn.modules.module
        self._hooks = [
            reg.register_module_forward_pre_hook(self._push),
            reg.register_module_forward_hook(self._pop, always_call=True),
        ]
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        super().__exit__(*exc)

    # ---- accounting ------------------------------------------------------------------------------------

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = str(func.overloadpacket.__name__)
        outs = [
            t
            for t in tree_flatten(out)[0]
            if isinstance(t, torch.Tensor) and t.device.type == self.device_type
        ]
        if outs:
            # An output on an input's storage (a view, an in-place or out= result) allocates nothing; if that
            # storage is not ours it was made before the tracker started and stays uncounted.
            inputs = {
                t.untyped_storage()._cdata
                for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor) and t.device.type == self.device_type
            }
            for t in outs:
                key = t.untyped_storage()._cdata
                if key not in inputs or key in self._live:
                    self._register(t, op)
        extra = round_block(self.workspace(func, args, kwargs, out), self.block) if self.workspace else 0
        if self.live_bytes + extra > self.peak_total:
            # The scratch exists while the op runs, i.e. with its inputs and outputs alive.
            self.peak_total = self.live_bytes + extra
            self.peak_total_path = self.path()
            scratch = Alloc(extra, (), torch.uint8, self.path(), f"{op} workspace (model)")
            self.peak_total_snapshot = [*self._live.values(), *([scratch] if extra else [])]
        return out

    def _register(self, t: torch.Tensor, op: str) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        nbytes = round_block(storage.nbytes(), self.block)
        old = self._live.get(key)
        if old is not None:
            if old.nbytes == nbytes:
                return  # a view or an in-place result: nothing new
            self.live_bytes -= old.nbytes  # resized in place (resize_, set_)
        else:
            self.allocs += 1
            weakref.finalize(storage, self._free, key)
        self._live[key] = Alloc(nbytes, tuple(t.shape), t.dtype, self.path(), op)
        self.live_bytes += nbytes
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            self.peak_path = self.path()
            self.peak_snapshot = list(self._live.values())

    def _free(self, key: int) -> None:
        alloc = self._live.pop(key, None)
        if alloc is not None:
            self.live_bytes -= alloc.nbytes

    def top(self, n: int = 10, total: bool = False) -> list[Alloc]:
        """The ``n`` largest storages alive at the peak (``total``: at the peak with modelled workspace)."""
        snap = self.peak_total_snapshot if total else self.peak_snapshot
        return sorted(snap, key=lambda a: -a.nbytes)[:n]

    def by_path(self) -> Iterator[tuple[str, int]]:
        """Bytes alive at the peak grouped by the module path that made them, largest first."""
        sums: dict[str, int] = {}
        for a in self.peak_snapshot:
            sums[a.path] = sums.get(a.path, 0) + a.nbytes
        yield from sorted(sums.items(), key=lambda kv: -kv[1])


class _Label:
    """Pushes a path element on a tracker's stack for the enclosed block."""

    def __init__(self, tracker: PeakTracker, name: str) -> None:
        self.tracker, self.name = tracker, name

    def __enter__(self) -> None:
        self.tracker._stack.append(self.name)

    def __exit__(self, *exc: object) -> None:
        self.tracker._stack.pop()


def track(fn: Callable[[], Any], device: str | torch.device, root: nn.Module | None = None) -> PeakTracker:
    """Run ``fn`` under a :class:`PeakTracker` (its result is dropped inside, as a caller would) and return it."""
    with PeakTracker(device, root) as t:
        fn()
    return t
