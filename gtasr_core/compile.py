"""Regional ``torch.compile`` of the GTASR network (CLI ``--compile``, ``benchmarks/perf_toggles.py --parts compile2``).

Compiled: every :class:`~.unet.UNetBlock` (EDM residual block with its Swin layer, if any) and the Swin
blocks' window maths with it. Inductor fuses the memory-bound work between the convolutions: GroupNorm
(statistics and normalisation; the fp32 or native-bf16 choice of ``perf.gtasr_native_groupnorm`` is traced
as written) with SiLU and the embedding add, the residual sum and its sqrt(1/2) scale, the window
partition / shift / reverse copies around the attention, GELU in the Swin MLP. At LR 1024 the level-0 maps
are 192×1024² (0.4 GiB in bf16), and eager runs each of those steps as its own pass.

Left eager: the stem conv, the aux norm/conv, and the nearest-upsampler head (in slabs: a Python loop whose
compiled form would unroll per slab), so ``perf.gtasr_head_rows`` keeps bounding the peak.

Layout: ``perf.PerfOptions.gtasr_channels_last`` still decides the layout (``upscale`` applies it); a
channels_last network compiles its own graphs (guards on strides). Compiled, NCHW measured faster (H200, LR 1024,
benchmarks/RESULTS.md, 2026-11-30: 0.415 s NCHW, 0.437 s channels_last; eager defaults 0.46 s), so the CLI runs
a compiled network under ``perf.COMPILED``.

Shapes: with the default ``dynamic=None`` the first block shape compiles a static graph and later shapes of
the block class (other levels, tiles, image sizes) share graphs with symbolic sizes; ``dynamic=False``
compiles one static graph per block shape and LR size.

The first call compiles 14 graphs: 89 s on the H200 (113 s channels_last), so it pays from a few hundred images of
one size. The CPU tests check that it compiles without graph breaks and matches eager.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..srkit.regional_compile import compile_blocks_of
from .unet import UNetBlock

__all__ = ["GTASR_COMPILED_BLOCKS", "compile_gtasr"]

GTASR_COMPILED_BLOCKS: tuple[type[nn.Module], ...] = (UNetBlock,)


def compile_gtasr(net: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile the GTASR network's UNet blocks in place (``fullgraph=True`` unless given); returns ``net``.

    ``compile_kwargs`` go to ``torch.compile`` (``backend="aot_eager"`` in the CPU tests, ``dynamic``,
    ``mode``). The first upscale at a new size pays the compilation.
    """
    compile_blocks_of(net, GTASR_COMPILED_BLOCKS, **compile_kwargs)
    return net
