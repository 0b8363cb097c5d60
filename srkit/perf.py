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

__all__ = ["BASELINE", "COMPILED", "PerfOptions", "current", "options", "set_options"]


@dataclass(frozen=True)
class PerfOptions:
    """Which optimised code paths run. All exact to rounding except ``gtasr_native_groupnorm`` (output rounded to bf16;
    error in tests/unit/test_perf_gtasr.py and benchmarks/RESULTS.md). Defaults: the eager settings measured fastest
    on an H200 (benchmarks/RESULTS.md, "Perf toggles", 2026-11-30); :data:`COMPILED` for compiled models."""

    # F16 VAE mid-block attention (one head, d = 512, no fused kernel) as chunked GEMMs with fp32 scores
    # and fp32 softmax, instead of SDPA's memory-efficient fallback.
    vae_gemm_attention: bool = True
    # Run the VAE's convolutions in channels_last (NHWC) layout (F16VAE applies it in inference calls). With the
    # layout-keeping GroupNorm (nhwc_group_norm) the H200 measured encode 0.212 -> 0.144 s, decode 0.387 -> 0.247 s
    # and working memory 6.00 -> 4.10 / 8.09 -> 5.10 GiB at 4096² (RESULTS.md, 2026-11-30, commit 88e176a); without
    # it channels_last was the slower layout (0.39 / 0.69 s). Compiled, NCHW is faster: see COMPILED.
    vae_channels_last: bool = True
    # ×2 upsamplers of the decoder as row chunks of nearest-up + conv: the 2× map never exists whole.
    vae_chunked_upsample: bool = True
    # Wavelet colour correction with separable (two 1-D) blurs and high = x - low.
    separable_color: bool = True
    # Output images leave the GPU through pinned memory; single images are not copied by torch.cat.
    pinned_output: bool = True
    # GTASR: bicubic, noise and the output of patch-free runs on the model's device (the noise field stays bit-identical
    # to the CPU's); tiled runs keep the whole image where the input is and move only tiles.
    gtasr_device_input: bool = True
    # GTASR network in channels_last layout. With the layout-keeping GroupNorm the H200 measured the 1024² -> 4096²
    # upscale 0.726 -> 0.503 s, same memory (RESULTS.md, 2026-11-30, commit 88e176a); without it 1.03 s.
    gtasr_channels_last: bool = True
    # GTASR nearest-upsampler head in slabs of this many LR rows (0: whole image). Exact.
    gtasr_head_rows: int = 128
    # GTASR Swin window attention this many windows at a time (0: all). Exact; bounds q, k, v, the bias and, on SDPA's
    # math path, the fp32 scores: the level-0 window attention is where the 4K upscale peaks (meta-device count,
    # benchmarks/peak_memory.py). Costs no time: 0.726 s chunked, 0.724 s whole (H200, RESULTS.md, 2026-11-30).
    gtasr_attn_windows: int = 2048
    # GTASR GroupNorm in the activation dtype (CUDA's kernel accumulates in fp32) instead of an fp32 copy.
    gtasr_native_groupnorm: bool = True
    # GTASR x2 down/up resampling with the released [1, 1] filter as avg_pool2d / nearest interpolation instead
    # of depthwise (transposed) convolutions with a 2x2 box kernel. Exact (up bit-identical, down to fp32
    # rounding). H200: 0.802 -> 0.793 s (RESULTS.md, 2026-11-30); the maps (up to 768 x 1024² at LR 1024) are pure
    # memory traffic, which pooling runs at bandwidth and grouped (transposed) convolutions do not.
    gtasr_box_resample: bool = True
    # GroupNorm of a channels_last map keeps channels_last (srkit/group_norm.py): "auto" where the device's own kernel
    # would return NCHW (CUDA in torch 2.11), "on" for every channels_last map (the CPU tests), "off" never. Saves the
    # NHWC<->NCHW transposes around every norm; exact to fp32 rounding. In effect with vae_channels_last /
    # gtasr_channels_last, and what makes that layout pay on CUDA (VAE decode 0.627 s with the native norm, 0.247 s
    # with this; GTASR 1.03 s vs 0.50 s; H200, RESULTS.md, 2026-11-30).
    nhwc_group_norm: str = "auto"
    # GTASR nearest x2 + 3x3 conv (up blocks, head) as one stride-2 transposed conv with a 4x4 kernel (4 instead of 9
    # multiply-adds per output, no 4x map), and x2 + 1x1 conv as conv then x2 (srkit/upsample_conv.py): 10.1 of the
    # 78.8 TFLOP at LR 1024. Exact maths; the summed taps are rounded once to the weight dtype. Also the F16 VAE
    # decoder's x2 upsamplers and tail (op4ksr_core/vae/tail.py, per row chunk): conv 39.6 -> 33.4 TFLOP at a 4096²
    # decode. H200, channels_last: GTASR 0.503 -> 0.463 s, VAE decode 0.247 -> 0.229 s (RESULTS.md, 2026-11-30).
    fused_upsample_conv: bool = True
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


# The layout under torch.compile (CLI --compile): Inductor generates its own fused GroupNorm for either layout, and
# NCHW measured faster compiled (H200, RESULTS.md, 2026-11-30, commit 88e176a): VAE encode 0.114 vs 0.131 s and
# decode 0.224 vs 0.231 s at 4096², GTASR 0.415 vs 0.437 s at LR 1024. Those compiled rows ran without the fused
# upsample conv (not measured compiled), so it is off here too: this is the configuration that was measured.
COMPILED = dataclasses.replace(
    PerfOptions(), vae_channels_last=False, gtasr_channels_last=False, fused_upsample_conv=False
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
