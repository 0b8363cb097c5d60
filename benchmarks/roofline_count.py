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

import torch

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
CONV_OPS = {"convolution", "_convolution", "conv2d", "cudnn_convolution", "convolution_overrideable"}
MATMUL_OPS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_scaled_mm", "addbmm", "dot"}
NORM_OPS = {
    "native_group_norm",
    "group_norm",
    "native_layer_norm",
    "layer_norm",
    "rms_norm",
    "_fused_rms_norm",
}
COPY_OPS = {"_to_copy", "copy_", "clone", "cat", "stack", "constant_pad_nd", "reflection_pad2d", "roll"}
COPY_OPS |= {"replication_pad2d", "pixel_shuffle", "pixel_unshuffle", "index", "index_select", "repeat"}
WRITE_ONLY_OPS = {"fill_", "zero_"}  # overwrite their first argument without reading it
FREE_OPS = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "lift_fresh", "detach"}


def classify(op: str, pointwise: bool = False, context: str = "", act_act: bool = False) -> str:
    """Kind of aten op ``op`` (overload packet name, e.g. ``"convolution"``), one of :data:`KINDS`.

    ``act_act``: a matrix product of two activations (no weight operand), i.e. an attention core (q kᵀ, p v).
    ``context``: ``"norm"`` / ``"attention"`` when the op runs inside such a module (innermost wins); the
    module's glue (casts, softmax, RoPE, statistics) is then charged to it, its projections stay GEMMs.
    """
    if op in CONV_OPS:
        return "conv"
    if op.startswith("_scaled_dot_product") or op == "scaled_dot_product_attention":
        return "attention"
    if op in MATMUL_OPS:
        return "attention" if act_act else "matmul"
    if op in NORM_OPS:
        return "norm"
    if op.startswith(("upsample_", "_upsample_")):
        return "upsample"
    if context in ("norm", "attention"):
        return context
    if op in COPY_OPS:
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
