"""Deterministic seeds derived from a base seed and indices (the same on every machine)."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and indices (step, sample, process...): the same on every machine."""
    digest = hashlib.blake2b(repr((int(seed), *map(int, parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
