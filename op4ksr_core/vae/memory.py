"""Working memory of an F16 VAE encode or decode, for ComfyUI's model loader (``memory_used_encode/decode``).

Measured on an NVIDIA H200 (torch 2.11, bf16, FLUX F16 VAE at real size, ``benchmarks/perf_toggles.py``,
2026-11-29 and -30; working memory = peak allocated minus allocated before the call, weights excluded):

- encode 4096² -> 256²: 6.00 GiB = 192 bytes per image pixel per byte of the dtype (1.50 GiB at 2048²);
- decode 256² -> 4096²: 8.60 GiB whole-map upsamplers, 8.09 GiB with the chunked ones (the default,
  ``srkit.perf``) = 70,500 bytes per latent pixel per dtype byte (2.02 GiB at 2048²).

The constants below add about 10 % to the larger figures. ComfyUI's F8 formulas scaled to the F16 geometry
asked 73 GB for a 4096² bf16 decode, which made it unload FLUX before every 4K decode on 80 GB cards.
"""

from __future__ import annotations

__all__ = ["DECODE_BYTES_PER_LATENT_PIXEL", "ENCODE_BYTES_PER_PIXEL", "decode_memory", "encode_memory"]

ENCODE_BYTES_PER_PIXEL = 212  # per image pixel and dtype byte (measured 192)
DECODE_BYTES_PER_LATENT_PIXEL = 78_000  # per latent pixel and dtype byte (measured 70,500)


def encode_memory(height: int, width: int, dtype_size: int) -> int:
    """Bytes of working memory to encode one height x width image with values of ``dtype_size`` bytes."""
    return ENCODE_BYTES_PER_PIXEL * height * width * dtype_size


def decode_memory(latent_height: int, latent_width: int, dtype_size: int) -> int:
    """Bytes of working memory to decode one latent_height x latent_width latent."""
    return DECODE_BYTES_PER_LATENT_PIXEL * latent_height * latent_width * dtype_size
