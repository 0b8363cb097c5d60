"""``--scale`` / ``--long-side``, the output size options every upscaler takes: checked before a model loads."""

from __future__ import annotations

import argparse

__all__ = ["check_target"]


def check_target(args: argparse.Namespace) -> None:
    """At most one of ``--scale`` and ``--long-side``, and each positive; ValueError naming the fix otherwise."""
    if args.long_side is not None and args.scale is not None:
        raise ValueError("give --long-side or --scale, not both")
    if args.scale is not None and not args.scale > 0:
        raise ValueError(f"--scale {args.scale}: give a ratio above 0, e.g. --scale 4")
    if args.long_side is not None and args.long_side < 1:
        raise ValueError(f"--long-side {args.long_side}: give a length in pixels, e.g. --long-side 4096")
