"""Regional ``torch.compile`` of the F16 VAE (CLI ``--compile``, ``benchmarks/perf_toggles.py --parts compile2``).

Compiled: every :class:`~.layers.ResnetBlock` (encoder and decoder levels, the two resnets of each mid block)
and every :class:`~.layers.Downsample`. Inductor fuses what eager mode runs as separate memory passes at full
resolution: GroupNorm statistics + normalisation + affine + SiLU (twice per resnet) and the residual add; the
convolutions stay cuDNN calls. At a 4096² decode the 2048²×128 maps are 1 GiB each in bf16, so every pass
saved is about 0.4 ms of H200 bandwidth per map.

Left eager on purpose (exact paths that do not trace into one graph, or gain nothing): the mid-block attention
(chunked GEMMs with ``bmm(out=)`` and a TF32 switch), the row-chunked ×2 upsamplers and the chunked
full-resolution tail (Python loops over row chunks: compiled, each chunk would be one more unrolled region),
and the banded out-of-memory fallback (``banded.py`` calls the blocks' convolutions and norms directly, except
the mid block, whose compiled resnets it then uses at latent size).

Layout: ``perf.PerfOptions.vae_channels_last`` still decides the layout (F16VAE applies it in inference calls); a
channels_last VAE compiles its own graphs (guards on strides). Inductor generates its own GroupNorm for either
layout, and compiled NCHW measured faster (H200, benchmarks/RESULTS.md, 2026-11-30, 4096²: encode 0.114 s NCHW vs
0.131 s channels_last, decode 0.224 vs 0.231 s; eager defaults 0.212 / 0.387 s), so the CLI runs a compiled VAE
under ``perf.COMPILED`` (NCHW).

Shapes: with the default ``dynamic=None`` the first block shape compiles a static graph and any later shape
of the same block class (another level, another image size) a graph with symbolic sizes, so a folder of
mixed sizes does not recompile per image (first call 26 s on the H200); ``dynamic=False`` compiles one static
graph per block shape and image size (at most :data:`~sr4k.srkit.regional_compile.RECOMPILE_LIMIT` per block
class): faster (0.095 / 0.189 s) but 17.7 s of compilation for every new image size.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...srkit.regional_compile import compile_blocks_of
from .layers import Downsample, ResnetBlock

__all__ = ["VAE_COMPILED_BLOCKS", "compile_vae"]

VAE_COMPILED_BLOCKS: tuple[type[nn.Module], ...] = (ResnetBlock, Downsample)


def compile_vae(vae: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile the F16 VAE's resnets and downsamplers in place (``fullgraph=True`` unless given); returns ``vae``.

    ``compile_kwargs`` go to ``torch.compile`` (``backend="aot_eager"`` in the CPU tests, ``dynamic``,
    ``mode``). The first encode/decode at a new shape pays the compilation.
    """
    compile_blocks_of(vae, VAE_COMPILED_BLOCKS, **compile_kwargs)
    return vae
