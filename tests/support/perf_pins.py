"""Options for tests of one code path rather than of the defaults.

Since the H200 run of 2026-11-30 the defaults run the VAE and GTASR channels_last and fuse nearest x2 + conv into one
transposed convolution (``srkit.perf``). Tests that pin bits of the released NCHW graph (goldens to 1e-6, bitwise
chunking, FLOP counts of the released network, peak accounting of its maps, graph counts) run under
:data:`NCHW_UNFUSED`; the defaults are checked against the reference path by the perf exactness tests
(tests/unit/test_perf_*.py, test_upsample_conv.py, test_input_layout.py) and run everywhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from sr4k.srkit import perf

NCHW_UNFUSED = dataclasses.replace(
    perf.PerfOptions(), vae_channels_last=False, gtasr_channels_last=False, fused_upsample_conv=False
)


@pytest.fixture
def nchw_unfused() -> Iterator[None]:
    """The test body runs under :data:`NCHW_UNFUSED`."""
    with perf.options(NCHW_UNFUSED):
        yield
