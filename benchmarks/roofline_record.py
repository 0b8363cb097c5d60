"""``OpRecorder``: the dispatch mode that turns a real call into :class:`roofline_count.OpRecord` rows.

Every aten op run while it is active is recorded with its FLOPs (``torch.utils.flop_counter`` formulas),
bytes (inputs + outputs, :func:`roofline_count.tensor_bytes`), kind (:func:`roofline_count.classify`), stage
and block (from module hooks); optionally timed. See ``roofline_count`` for the bound each record implies.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from roofline_count import (
    CONV_OPS,
    FREE_OPS,
    MATMUL_OPS,
    PEAK_FLOPS,
    TF32_FLOPS,
    WRITE_ONLY_OPS,
    OpRecord,
    classify,
    gemm_fused_bytes,
    tensor_bytes,
)
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_flop_count


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class OpRecorder(TorchDispatchMode):
    """Records an :class:`OpRecord` for every aten op run while active (use with ``torch.no_grad()``).

    ``modules``: {stage name: module}; each module's ops are charged to that stage (innermost wins), the rest
    to ``"other"``. ``block`` is the qualified name of the innermost module inside a stage. SDPA calls are
    recorded as one fused attention op (on the GPU: flash / memory-efficient kernels; on meta it would
    decompose into matmuls and a softmax that the GPU never runs).

    ``device``: the type the model runs on ("meta" and "cuda" stand for the GPU: CPU tensors are host work;
    "cpu": every op is a device op). ``timed``: also time each recorded op (CUDA events right around it, or
    the wall clock on the CPU); :meth:`op_seconds` gives the times, aligned with ``records``.
    """

    def __init__(
        self, modules: dict[str, torch.nn.Module], device: str = "meta", timed: bool = False
    ) -> None:
        super().__init__()
        self.records: list[OpRecord] = []
        self.device, self.timed = device, timed
        self._marks: list[tuple[Any, Any]] = []
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

    def mark(self) -> Any:
        """A point in time on the model's stream (CUDA event) or the wall clock; None when not timed."""
        if not self.timed:
            return None
        if self.device == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def op_seconds(self) -> list[float]:
        """Time of each recorded op (waits for the GPU). Needs ``timed``."""
        if self.device == "cuda":
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in self._marks]
        return [b - a for a, b in self._marks]

    def record(
        self, op: str, kind: str, flops: int, ins: list, outs: list, fused: int, marks: tuple = (None, None)
    ) -> None:
        """Append one op; ``fused``: its bytes in the fused bound (0: fused away); ``marks``: its start, end."""
        devices = {t.device.type for t in ins + outs}
        where = "host" if devices <= {"cpu"} else "transfer" if "cpu" in devices else "device"
        where = "device" if self.device == "cpu" else where
        nbytes = sum(tensor_bytes(t) for t in ins + outs)
        if where == "transfer":  # only the moved tensor crosses the link, fused or not
            nbytes = fused = sum(tensor_bytes(t) for t in outs)
        stage, block, _ = self._where()
        shapes = tuple(tuple(t.shape) for t in ins + outs)
        peak = TF32_FLOPS if any(t.dtype == torch.float32 for t in ins) else PEAK_FLOPS
        rec = OpRecord(op, kind, where, stage, block, int(flops), nbytes, fused, shapes, peak)
        self.records.append(rec)
        if self.timed:
            self._marks.append(marks)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        start = self.mark()
        out = _run_op(func, args, kwargs)
        marks = (start, self.mark())
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
        if is_view or name in FREE_OPS or name.startswith("empty"):
            return out
        if name in WRITE_ONLY_OPS:
            ins = []
        elif name == "copy_":
            ins = ins[1:]
        act_act = name in MATMUL_OPS and not any(id(t) in self._weights for t in ins)
        kind = classify(name, torch.Tag.pointwise in func.tags, self._where()[2], act_act)
        counter = flop_registry.get(func._overloadpacket)
        flops = counter(*args, **kwargs, out_val=out) if counter is not None else 0
        gemm = name in CONV_OPS or name in MATMUL_OPS
        fused = sum(tensor_bytes(t) for t in ins + outs) if gemm else 0
        if gemm and act_act and len(ins) >= 2:
            a, b = (tensor_bytes(t) for t in ins[-2:])
            fused = gemm_fused_bytes(a, b, sum(tensor_bytes(t) for t in outs), True)
        self.record(name, kind, flops, ins, outs, fused, marks)
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
        start = self.recorder.mark()
        try:
            out = func(*args, **kwargs)
        finally:
            self.recorder.in_sdpa = False
        marks = (start, self.recorder.mark())
        names = ("query", "key", "value", "attn_mask")
        bound = {**dict(zip(names, args, strict=False)), **kwargs}
        q, k, v, mask = (bound.get(n) for n in names)
        ins = [q, k, v] + ([mask] if isinstance(mask, torch.Tensor) else [])
        flops = sdpa_flop_count(q.shape, k.shape, v.shape)
        fused = sum(tensor_bytes(t) for t in [*ins, out])
        self.recorder.record("scaled_dot_product_attention", "attention", flops, ins, [out], fused, marks)
        return out
