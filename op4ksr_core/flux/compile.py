"""Regional ``torch.compile`` of the FLUX transformer for the headless path (CLI ``--compile``).

Only the repeated blocks (19 double, 38 single) are compiled, each block class once (diffusers'
``compile_repeated_blocks``), so compilation costs one graph per block type instead of one for the whole
model; Inductor fuses RoPE, norms, modulation, GELU and gates between the GEMMs. The first call pays the
compilation (logged by the CLI); later calls at the same token count reuse it. Measured on an H200 at
1024² -> 4096² (benchmarks/RESULTS.md, 2026-11-30): transformer 0.81 -> 0.66 s, whole upscale 1.45 -> 1.34 s;
the first call (compilation included) 18.3 s.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["compile_blocks"]


def compile_blocks(transformer: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile the repeated blocks of a diffusers FLUX transformer in place (``fullgraph=True`` unless given);
    ``compile_kwargs`` go to ``torch.compile`` (e.g. ``backend="aot_eager"`` in tests). Returns the model."""
    if not hasattr(transformer, "compile_repeated_blocks"):
        raise TypeError(
            f"{type(transformer).__name__} has no compile_repeated_blocks: expected a diffusers "
            "FluxTransformer2DModel (diffusers >= 0.35)"
        )
    compile_kwargs.setdefault("fullgraph", True)
    transformer.compile_repeated_blocks(**compile_kwargs)
    return transformer
