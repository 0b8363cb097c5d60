"""Counter-based standard normal noise that is bit-identical on every device (CPU, any GPU).

``torch.randn`` gives different values on the CPU and on CUDA (and its CPU stream is single-threaded: 0.6 s
for a 4K RGB field). Here value i of a field is a pure function of (seed, i), computed with integer and
correctly rounded float64 operations only, so CPU and GPU produce the same bits:

1. ``r = mix(mix(i_lo ^ k0) ^ i_hi ^ k1)``: a 32-bit hash of the element index ``i`` keyed by the seed
   (``mix`` is the "lowbias32" integer finaliser; 32-bit products are done in 16-bit halves so no int64
   product overflows).
2. The top bit of ``r`` is the sign; the other 31 bits give a tail probability ``v = (2m + 1) / 2³²`` in (0, 1).
3. ``|z| = Q(v)``, the inverse of ``v = P(|Z| > z)``, by linear interpolation in a table: for each octave
   ``v ∈ [2⁻ᵒ⁻¹, 2⁻ᵒ)`` (o = 0..31, read exactly with ``frexp``) ``SEGMENTS`` equal steps, tabulated on the
   CPU in float64 with ``torch.special.ndtri``. Only exact operations (frexp, floor, power-of-two scaling)
   and single IEEE mul/add/sub steps are used, never a transcendental function on the device, whose last
   bit differs between CPU and GPU libraries.

Distribution: the normal to table accuracy (interpolation error < 1e-6 in z), truncated at |z| = 6.33
(v >= 2⁻³²); per-value independence is that of the hash.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["CHUNK", "CPU_CHUNK", "OCTAVES", "SEGMENTS", "counter_normal", "seed_keys"]

SEGMENTS = 256  # table steps per octave of v
OCTAVES = 32  # v >= 2^-32
_M32 = 0xFFFFFFFF
CHUNK = 1 << 22  # elements per pass on a GPU: 32 MiB per int64 / float64 temporary, 176 MiB at most in all
# On the CPU every pass streams its temporaries through memory; passes of 1 MiB per temporary stay in the
# cache: 11 s -> 1.0 s for a 4K RGB field on 2 cores (torch.randn's CPU stream: 0.3 s).
CPU_CHUNK = 1 << 17


def _mul32_(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2³² for int64 x in [0, 2³²): two 16-bit-half products, each < 2⁴⁸. Overwrites x."""
    lo = x * (m & 0xFFFF)
    return lo.add_(x.mul_(m >> 16).bitwise_and_(0xFFFF).bitwise_left_shift_(16)).bitwise_and_(_M32)


def _mix_(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash (C. Wellons): a bijection of [0, 2³²) with good avalanche. Overwrites x."""
    x.bitwise_xor_(x >> 16)
    x = _mul32_(x, 0x7FEB352D)
    x.bitwise_xor_(x >> 15)
    x = _mul32_(x, 0x846CA68B)
    return x.bitwise_xor_(x >> 16)


def _mix_int(x: int) -> int:
    """The same hash on a Python int (for the seed keys)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def seed_keys(seed: int) -> tuple[int, int]:
    """Two 32-bit keys from a seed of up to 64 bits (negative seeds taken modulo 2⁶⁴)."""
    s = int(seed) % (1 << 64)
    return _mix_int((s & _M32) ^ 0x9E3779B9), _mix_int(((s >> 32) & _M32) ^ 0x85EBCA6B)


@functools.lru_cache(maxsize=1)
def _table_cpu() -> torch.Tensor:
    """[OCTAVES, SEGMENTS + 1] float64: Q(v) at v = 2⁻ᵒ · (1/2 + j / (2 SEGMENTS))."""
    o = torch.arange(OCTAVES, dtype=torch.float64)[:, None]
    j = torch.arange(SEGMENTS + 1, dtype=torch.float64)[None, :]
    v = torch.exp2(-o) * (0.5 + j / (2 * SEGMENTS))
    return (-torch.special.ndtri(v / 2)).clamp_min(0.0)  # P(|Z| > z) = v  <=>  z = -ndtri(v / 2)


@functools.lru_cache(maxsize=1)
def _segments_cpu() -> tuple[torch.Tensor, torch.Tensor]:
    """Each table step's start ``z0`` and rise ``z1 - z0`` (float64, [OCTAVES * SEGMENTS]), flat by
    ``octave * SEGMENTS + segment``: one gather less per value than reading both ends."""
    t = _table_cpu()
    return t[:, :-1].reshape(-1).contiguous(), (t[:, 1:] - t[:, :-1]).reshape(-1).contiguous()


def _values(index: torch.Tensor, k0: int, k1: int, z0: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
    """Normal values (float32) for int64 element indices; ``z0``, ``dz`` from :func:`_segments_cpu` on
    index's device. In-place steps on fresh temporaries, each dropped when spent: about 40 bytes per value
    live at once besides ``index``, and half the memory traffic of out-of-place steps."""
    r = _mix_((index & _M32).bitwise_xor_(k0))
    r = _mix_(r.bitwise_xor_(index >> 32).bitwise_xor_(k1))
    sign = (r >> 31).to(torch.float32).mul_(-2.0).add_(1.0)  # +1 or -1: the top bit
    v = r.bitwise_and_(0x7FFFFFFF).to(torch.float64)
    del r
    v.mul_(2.0).add_(1.0).mul_(2.0**-32)  # exact: 2m + 1 < 2^32 fits float64's 53 bits
    frac, exp = torch.frexp(v)  # v = mant * 2^exp, mant in [0.5, 1), exp in [-31, 0]
    del v
    frac.sub_(0.5).mul_(2 * SEGMENTS)  # the position in the octave, exact; in [0, SEGMENTS)
    seg = frac.floor()
    frac.sub_(seg)
    step = exp.neg_().to(torch.int64)
    del exp
    step.mul_(SEGMENTS).add_(seg.to(torch.int64))
    del seg
    # z0 + dz * frac as a separate mul and add: no fused multiply-add, the same rounding everywhere
    z = dz[step].mul_(frac)
    del frac
    z.add_(z0[step])
    del step
    return z.to(torch.float32).mul_(sign)


def _compute_device(device: torch.device) -> torch.device:
    """Where the values are computed: the CPU and CUDA (also ROCm) devices themselves (and "meta", which only
    counts memory); other accelerators (Apple MPS has no float64, others vary) on the CPU, then copied, which
    keeps the bits."""
    return device if device.type in ("cpu", "cuda", "meta") else torch.device("cpu")


def _chunk(device: torch.device) -> int:
    return CPU_CHUNK if device.type == "cpu" else CHUNK


def counter_normal(
    shape: tuple[int, ...] | torch.Size,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    compute: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normal field of ``shape`` on ``device``: element at flat (row-major) index i is a function of
    (seed, i) only, bit-identical on every device.

    Computed on ``compute`` (default: ``device``) when that is the CPU or a CUDA/ROCm GPU (a 4K RGB field:
    milliseconds on a GPU, about 1 s on 2 CPU cores), on the CPU otherwise. A field for the CPU computed on a GPU
    comes over pass by pass, so the GPU holds one pass's temporaries (176 MiB at most), never the field."""
    target = torch.device(device)
    n = 1
    for d in shape:
        n *= int(d)
    k0, k1 = seed_keys(seed)
    where = _compute_device(target if compute is None else torch.device(compute))
    z0, dz = (t.to(where) for t in _segments_cpu())
    out = torch.empty(n, dtype=torch.float32, device=target if target.type == "cpu" else where)
    chunk = _chunk(where)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out[start:stop] = _values(torch.arange(start, stop, device=where, dtype=torch.int64), k0, k1, z0, dz)
    return out.reshape(tuple(shape)).to(device=target, dtype=dtype)
