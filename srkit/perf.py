"""Switches for the speed and memory optimisations (issue #11), read at call time by the code they affect.

Every optimisation has an unoptimised twin kept as the reference: the CPU exactness tests and
``benchmarks/perf_toggles.py`` run both and compare. Defaults are the settings measured faster on an H200
(benchmarks/RESULTS.md, "perf toggles"); each one is exact up to floating-point rounding unless its comment
says otherwise.

    from sr4k.srkit import perf
    with perf.options(vae_gemm_attention=False):   # the reference path, e.g. in a test
        ...
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["BASELINE", "PerfOptions", "current", "options", "set_options"]


@dataclass(frozen=True)
class PerfOptions:
    """Which optimised code paths run. All exact to rounding except ``gtasr_native_groupnorm`` (output rounded to bf16;
    error in tests/unit/test_perf_gtasr.py and benchmarks/RESULTS.md)."""

    # F16 VAE mid-block attention (one head, d = 512, no fused kernel) as chunked GEMMs with fp32 scores
    # and fp32 softmax, instead of SDPA's memory-efficient fallback.
    vae_gemm_attention: bool = True
    # Run the VAE's convolutions in channels_last (NHWC) layout. Off: on the H200 it cut the decode's working
    # memory by 1.5 GiB but made encode 0.27 -> 0.39 s and decode 0.44 -> 0.69 s (RESULTS.md, 2026-11-29), measured
    # before the layout-keeping GroupNorm (nhwc_group_norm) and the NHWC upsample rows: to be measured again.
    vae_channels_last: bool = False
    # ×2 upsamplers of the decoder as row chunks of nearest-up + conv: the 2× map never exists whole.
    vae_chunked_upsample: bool = True
    # Wavelet colour correction with separable (two 1-D) blurs and high = x - low.
    separable_color: bool = True
    # Output images leave the GPU through pinned memory; single images are not copied by torch.cat.
    pinned_output: bool = True
    # GTASR: bicubic, noise and the output of patch-free runs on the model's device (the noise field stays bit-identical
    # to the CPU's); tiled runs keep the whole image where the input is and move only tiles.
    gtasr_device_input: bool = True
    # GTASR network in channels_last layout. Off: on the H200 it made the upscale 0.82 -> 1.16 s, and with the head
    # in slabs it saves no memory (11.55 GiB working set either way; RESULTS.md, 2026-11-30), measured before the
    # layout-keeping GroupNorm (nhwc_group_norm) and the NHWC Swin window reverse and rolls: to be measured again.
    gtasr_channels_last: bool = False
    # GTASR nearest-upsampler head in slabs of this many LR rows (0: whole image). Exact.
    gtasr_head_rows: int = 128
    # GTASR Swin window attention this many windows at a time (0: all). Exact; bounds q, k, v, the bias and, on SDPA's
    # math path, the fp32 scores: the level-0 window attention is where the 4K upscale peaks (meta-device count,
    # benchmarks/peak_memory.py). Time not yet measured on a GPU (8 chunks at LR 1024).
    gtasr_attn_windows: int = 2048
    # GTASR GroupNorm in the activation dtype (CUDA's kernel accumulates in fp32) instead of an fp32 copy.
    gtasr_native_groupnorm: bool = True
    # GTASR x2 down/up resampling with the released [1, 1] filter as avg_pool2d / nearest interpolation instead
    # of depthwise (transposed) convolutions with a 2x2 box kernel. Exact (up bit-identical, down to fp32
    # rounding). Not yet measured on a GPU: chosen because grouped convolutions, transposed ones above all, run
    # far below memory bandwidth on CUDA, while these maps (up to 768 x 1024² at LR 1024) are pure memory traffic.
    gtasr_box_resample: bool = True
    # GroupNorm of a channels_last map keeps channels_last (srkit/group_norm.py): "auto" where the device's own kernel
    # would return NCHW (CUDA in torch 2.11), "on" for every channels_last map (the CPU tests), "off" never. Saves the
    # NHWC<->NCHW transposes around every norm; exact to fp32 rounding. Only in effect with vae_channels_last /
    # gtasr_channels_last (both off until a GPU run measures this).
    nhwc_group_norm: str = "auto"
    # GTASR nearest x2 + 3x3 conv (up blocks, head) as one stride-2 transposed conv with a 4x4 kernel (4 instead of 9
    # multiply-adds per output, no 4x map), and x2 + 1x1 conv as conv then x2 (srkit/upsample_conv.py): 10.1 of the
    # 78.8 TFLOP at LR 1024. Exact maths; the summed taps are rounded once to the weight dtype. Off until a GPU run
    # shows cuDNN's transposed convolution is faster than the plain one on 4x the pixels. Also the F16 VAE decoder's
    # x2 upsamplers and tail (op4ksr_core/vae/tail.py, per row chunk): conv 39.6 -> 33.4 TFLOP at a 4096² decode.
    fused_upsample_conv: bool = False
    # OP4KSR's transformer call with SDPA's priority pinned to cuDNN attention first on sm90+ (srkit/attention_priority.py):
    # 0.880 s vs flash's 1.140 s for the transformer on an H100 (../shared/tools/gpu_probe.md); torch 2.11 already
    # picks cuDNN there, releases that put flash first would not. Same maths (both are exact attention kernels).
    cudnn_attention_first: bool = True


_CURRENT = PerfOptions()
BASELINE = PerfOptions(
    vae_gemm_attention=False,
    vae_channels_last=False,
    vae_chunked_upsample=False,
    separable_color=False,
    pinned_output=False,
    gtasr_device_input=False,
    gtasr_channels_last=False,
    gtasr_head_rows=0,
    gtasr_attn_windows=0,
    gtasr_native_groupnorm=False,
    gtasr_box_resample=False,
    nhwc_group_norm="off",
    fused_upsample_conv=False,
    cudnn_attention_first=False,
)


def current() -> PerfOptions:
    """The options in force."""
    return _CURRENT


def set_options(opts: PerfOptions) -> None:
    """Install ``opts`` process-wide, e.g. :data:`BASELINE` for a whole script; :func:`options` scopes a change."""
    global _CURRENT
    _CURRENT = opts


@contextlib.contextmanager
def options(base: PerfOptions | None = None, **changes: object) -> Iterator[PerfOptions]:
    """Run a block with ``base`` (default: the current options) changed by ``changes``; restored after."""
    global _CURRENT
    old = _CURRENT
    _CURRENT = dataclasses.replace(base or old, **changes)
    try:
        yield _CURRENT
    finally:
        _CURRENT = old
