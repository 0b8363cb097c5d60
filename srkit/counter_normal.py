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

__all__ = ["CHUNK", "OCTAVES", "SEGMENTS", "counter_normal", "seed_keys"]

SEGMENTS = 256  # table steps per octave of v
OCTAVES = 32  # v >= 2^-32
_M32 = 0xFFFFFFFF
CHUNK = 1 << 24  # elements per pass (bounds the int64 / float64 temporaries to 128 MiB each)


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2³² for int64 x in [0, 2³²): two 16-bit-half products, each < 2⁴⁸."""
    lo = x * (m & 0xFFFF)
    hi = ((x * (m >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _M32


def _mix(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash (C. Wellons): a bijection of [0, 2³²) with good avalanche."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


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


def _table(device: torch.device) -> torch.Tensor:
    return _table_cpu().to(device).reshape(-1)


def _values(index: torch.Tensor, k0: int, k1: int, table: torch.Tensor) -> torch.Tensor:
    """Normal values (float32) for int64 element indices."""
    r = _mix(_mix((index & _M32) ^ k0) ^ (index >> 32) ^ k1)
    negative = (r >> 31).bool()
    m = (r & 0x7FFFFFFF).to(torch.float64)
    v = (m * 2 + 1) * 2.0**-32  # exact: (2m + 1) < 2^32 fits float64's 53 bits
    mant, exp = torch.frexp(v)  # v = mant * 2^exp, mant in [0.5, 1), exp in [-31, 0]
    pos = (mant - 0.5) * (2 * SEGMENTS)  # exact; in [0, SEGMENTS)
    seg = pos.floor()
    frac = pos - seg
    base = (-exp).to(torch.int64) * (SEGMENTS + 1) + seg.to(torch.int64)
    z0, z1 = table[base], table[base + 1]
    z = z0 + (z1 - z0) * frac  # separate mul and add: no fused multiply-add, same rounding everywhere
    z = z.to(torch.float32)
    return torch.where(negative, -z, z)


def counter_normal(
    shape: tuple[int, ...] | torch.Size,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal field of ``shape``: element at flat (row-major) index i is a function of (seed, i)
    only, bit-identical on every device."""
    device = torch.device(device)
    n = 1
    for d in shape:
        n *= int(d)
    k0, k1 = seed_keys(seed)
    table = _table(device)
    out = torch.empty(n, dtype=torch.float32, device=device)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        out[start:stop] = _values(torch.arange(start, stop, device=device, dtype=torch.int64), k0, k1, table)
    return out.reshape(tuple(shape)).to(dtype)
