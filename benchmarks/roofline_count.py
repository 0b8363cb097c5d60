"""Per-op accounting for ``roofline.py``: FLOPs and bytes of every aten op a call executes, and the roofline
lower bound of each op on a GPU of given peak rates.

Williams et al. 2009 (Roofline): an op cannot finish faster than its arithmetic at the peak rate nor than its
memory traffic at the peak bandwidth, so ``t >= max(flops / peak, bytes / bandwidth)``. Bytes are the unique
elements of every input and output tensor (an op reads each input and writes each output at least once; a
broadcast input counts once), in the tensors' own dtypes. Views and ``empty`` cost nothing. Run on the
``meta`` device this costs no compute and no memory at any size; ``meta`` stands for the GPU, CPU tensors are
host work and copies between the two are PCIe transfers.

Two sums (:func:`summarize`): **eager**, every op at its own bound (PyTorch eager reads and writes every
intermediate), and **fused**, only the GEMM-like ops (convolutions, matrix products, attention) move their
inputs and outputs once while norms, activations, adds, casts, copies and resampling are fused into them for
free; an attention core is charged as a flash kernel (Q, K, V, O once, no score matrix in memory).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_flop_count

# H200 ceilings measured on this workplace's machines (/work/.library/device/KINDS.md): bf16 8192^3 matmul on
# random data 769-798 TFLOP/s, device-to-device copy 4.3 TB/s counting bytes read + written.
PEAK_FLOPS = 790e12
HBM_BYTES_S = 4.3e12
# Host link: PCIe 5.0 x16 nominal per direction (not measured here; a lower bound needs the highest rate).
PCIE_BYTES_S = 64e9
RIDGE = PEAK_FLOPS / HBM_BYTES_S  # FLOP/byte below which an op is memory-bound (~184)
# float32 GEMM operands run as TF32 at best (the VAE's attention scores enable it; cuDNN convs use it by
# default): half the bf16 rate on Hopper (datasheet dense TF32 495 vs bf16 990 TFLOP/s).
TF32_FLOPS = PEAK_FLOPS / 2

KINDS = ("conv", "matmul", "attention", "norm", "elementwise", "upsample", "copy", "other")
_CONV = {"convolution", "_convolution", "conv2d", "cudnn_convolution", "convolution_overrideable"}
_MATMUL = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_scaled_mm", "addbmm", "dot"}
_NORM = {"native_group_norm", "group_norm", "native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm"}
_COPY = {"_to_copy", "copy_", "clone", "cat", "stack", "constant_pad_nd", "reflection_pad2d", "roll"}
_COPY |= {"replication_pad2d", "pixel_shuffle", "pixel_unshuffle", "index", "index_select", "repeat"}
_WRITE_ONLY = {"fill_", "zero_"}  # overwrite their first argument without reading it
_FREE = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "lift_fresh", "detach"}


def classify(op: str, pointwise: bool = False, context: str = "", act_act: bool = False) -> str:
    """Kind of aten op ``op`` (overload packet name, e.g. ``"convolution"``), one of :data:`KINDS`.

    ``act_act``: a matrix product of two activations (no weight operand), i.e. an attention core (q kᵀ, p v).
    ``context``: ``"norm"`` / ``"attention"`` when the op runs inside such a module (innermost wins); the
    module's glue (casts, softmax, RoPE, statistics) is then charged to it, its projections stay GEMMs.
    """
    if op in _CONV:
        return "conv"
    if op.startswith("_scaled_dot_product") or op == "scaled_dot_product_attention":
        return "attention"
    if op in _MATMUL:
        return "attention" if act_act else "matmul"
    if op in _NORM:
        return "norm"
    if op.startswith(("upsample_", "_upsample_")):
        return "upsample"
    if context in ("norm", "attention"):
        return context
    if op in _COPY:
        return "copy"
    return "elementwise" if pointwise else "other"


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements of ``t``: dims of stride 0 (broadcast by ``expand``) count once."""
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        n *= size if stride != 0 else 1
    return n * t.element_size()


def op_bound_s(
    flops: float, nbytes: float, peak: float = PEAK_FLOPS, bandwidth: float = HBM_BYTES_S
) -> float:
    """Roofline lower bound of one op in seconds: max(flops / peak, bytes / bandwidth)."""
    return max(flops / peak, nbytes / bandwidth)


def gemm_fused_bytes(a: int, b: int, out: int, act_act: bool) -> int:
    """Bytes a fused kernel must move for ``out = a @ b``. For an attention core (``act_act``) the score
    matrix never reaches memory (flash attention): q kᵀ moves q and k, p v moves v and the output, i.e. of
    ``a`` and ``out`` only the smaller (the one that is not the N x N scores) counts."""
    return a + b + out if not act_act else b + min(a, out)


@dataclass(frozen=True)
class OpRecord:
    """One executed op: where ("device" / "host" / "transfer"), which stage and block, its kind and counts."""

    op: str
    kind: str
    where: str
    stage: str
    block: str
    flops: int
    nbytes: int  # eager: inputs + outputs
    fused_bytes: int  # what the op moves in the fused bound (0 for ops fused away)
    shapes: tuple[tuple[int, ...], ...] = ()
    peak: float = PEAK_FLOPS  # arithmetic ceiling for this op's dtype

    @property
    def gemm(self) -> bool:
        """Counted in the fused bound: a convolution, matrix product or attention core (not its glue)."""
        return self.fused_bytes > 0 and self.where == "device"

    @property
    def eager_s(self) -> float:
        if self.where == "transfer":
            return self.nbytes / PCIE_BYTES_S
        return 0.0 if self.where == "host" else op_bound_s(self.flops, self.nbytes, self.peak)

    @property
    def fused_s(self) -> float:
        if self.where == "transfer":
            return self.eager_s
        return op_bound_s(self.flops, self.fused_bytes, self.peak) if self.gemm else 0.0


@dataclass(frozen=True)
class Totals:
    flops: int
    nbytes: int
    fused_bytes: int
    eager_s: float
    fused_s: float


def summarize(records: Iterable[OpRecord], key: Callable[[OpRecord], str]) -> dict[str, Totals]:
    """Sum FLOPs, bytes and both bounds of the device and transfer ops per ``key(record)``."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for r in records:
        if r.where == "host":
            continue
        a = acc[key(r)]
        a[0] += r.flops
        a[1] += r.nbytes
        a[2] += r.fused_bytes
        a[3] += r.eager_s
        a[4] += r.fused_s
    return {k: Totals(int(v[0]), int(v[1]), int(v[2]), v[3], v[4]) for k, v in acc.items()}


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class OpRecorder(TorchDispatchMode):
    """Records an :class:`OpRecord` for every aten op run while active (use with ``torch.no_grad()``).

    ``modules``: {stage name: module}; each module's ops are charged to that stage (innermost wins), the rest
    to ``"other"``. ``block`` is the qualified name of the innermost module inside a stage. SDPA calls are
    recorded as one fused attention op (on the GPU: flash / memory-efficient kernels; on meta it would
    decompose into matmuls and a softmax that the GPU never runs).
    """

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        super().__init__()
        self.records: list[OpRecord] = []
        self._names: dict[int, tuple[str, str, str]] = {}  # id(module) -> (stage, qualified name, class)
        self._weights: dict[int, torch.Tensor] = {}  # parameters/buffers and tensors derived from them only
        for stage, root in modules.items():
            for name, m in root.named_modules():
                self._names[id(m)] = (stage, name, type(m).__name__)
            for t in [*root.parameters(), *root.buffers()]:
                self._weights[id(t)] = t
        self._stack: list[tuple[str, str, str]] = []
        self._handles: list[Any] = []
        self._fn_mode = _SDPAMode(self)
        self.in_sdpa = False

    def __enter__(self) -> OpRecorder:
        pre = torch.nn.modules.module.register_module_forward_pre_hook(self._push)
        post = torch.nn.modules.module.register_module_forward_hook(self._pop)
        self._handles = [pre, post]
        self._fn_mode.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._fn_mode.__exit__(*exc)
        for h in self._handles:
            h.remove()

    def _push(self, module: torch.nn.Module, *_: object) -> None:
        if id(module) in self._names:
            self._stack.append(self._names[id(module)])

    def _pop(self, module: torch.nn.Module, *_: object) -> None:
        if id(module) in self._names and self._stack:
            self._stack.pop()

    def _where(self) -> tuple[str, str, str]:
        """(stage, block, context) of the current module stack."""
        if not self._stack:
            return "other", "", ""
        context = ""
        for _, _, cls in reversed(self._stack):
            if "Attention" in cls or "Norm" in cls:
                context = "attention" if "Attention" in cls else "norm"
                break
        stage, name, _ = self._stack[-1]
        return stage, name, context

    def record(self, op: str, kind: str, flops: int, ins: list, outs: list, fused: int) -> None:
        """Append one op; ``fused``: its bytes in the fused bound (0: fused away)."""
        devices = {t.device.type for t in ins + outs}
        where = "host" if devices <= {"cpu"} else "transfer" if "cpu" in devices else "device"
        nbytes = sum(tensor_bytes(t) for t in ins + outs)
        if where == "transfer":  # only the moved tensor crosses the link, fused or not
            nbytes = fused = sum(tensor_bytes(t) for t in outs)
        stage, block, _ = self._where()
        shapes = tuple(tuple(t.shape) for t in ins + outs)
        peak = TF32_FLOPS if any(t.dtype == torch.float32 for t in ins) else PEAK_FLOPS
        rec = OpRecord(op, kind, where, stage, block, int(flops), nbytes, fused, shapes, peak)
        self.records.append(rec)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = _run_op(func, args, kwargs)
        if self.in_sdpa:
            return out
        name = func._overloadpacket.__name__
        ins = _tensors((args, {k: v for k, v in kwargs.items() if k != "out"}))
        outs = _tensors(out)
        from_weights = bool(ins) and all(id(t) in self._weights for t in ins)
        schema_ret = func._schema.returns
        is_view = bool(schema_ret) and schema_ret[0].alias_info is not None
        is_view = is_view and not schema_ret[0].alias_info.is_write
        if from_weights:  # weight.t(), weight.float(): keep knowing they are weights
            for t in outs:
                self._weights[id(t)] = t
        if is_view or name in _FREE or name.startswith("empty"):
            return out
        if name in _WRITE_ONLY:
            ins = []
        elif name == "copy_":
            ins = ins[1:]
        act_act = name in _MATMUL and not any(id(t) in self._weights for t in ins)
        kind = classify(name, torch.Tag.pointwise in func.tags, self._where()[2], act_act)
        counter = flop_registry.get(func._overloadpacket)
        flops = counter(*args, **kwargs, out_val=out) if counter is not None else 0
        gemm = name in _CONV or name in _MATMUL
        fused = sum(tensor_bytes(t) for t in ins + outs) if gemm else 0
        if gemm and act_act and len(ins) >= 2:
            a, b = (tensor_bytes(t) for t in ins[-2:])
            fused = gemm_fused_bytes(a, b, sum(tensor_bytes(t) for t in outs), True)
        self.record(name, kind, flops, ins, outs, fused)
        return out


def _run_op(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run ``func``; a meta -> CPU copy (the result leaving the GPU) returns an uninitialised CPU tensor."""
    try:
        return func(*args, **kwargs)
    except NotImplementedError:
        src = args[0] if args else None
        target = kwargs.get("device")
        if isinstance(src, torch.Tensor) and src.is_meta and target is not None and target.type == "cpu":
            return torch.empty(src.shape, dtype=kwargs.get("dtype") or src.dtype)
        raise


class _SDPAMode(TorchFunctionMode):
    """Catches ``F.scaled_dot_product_attention`` and records it as one attention op of its recorder."""

    def __init__(self, recorder: OpRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or self.recorder.in_sdpa:
            return func(*args, **kwargs)
        self.recorder.in_sdpa = True
        try:
            out = func(*args, **kwargs)
        finally:
            self.recorder.in_sdpa = False
        names = ("query", "key", "value", "attn_mask")
        bound = {**dict(zip(names, args, strict=False)), **kwargs}
        q, k, v, mask = (bound.get(n) for n in names)
        ins = [q, k, v] + ([mask] if isinstance(mask, torch.Tensor) else [])
        flops = sdpa_flop_count(q.shape, k.shape, v.shape)
        fused = sum(tensor_bytes(t) for t in [*ins, out])
        self.recorder.record("scaled_dot_product_attention", "attention", flops, ins, [out], fused)
        return out
