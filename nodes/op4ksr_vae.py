"""VAE encode/decode for ``OP4KSR_Upscale`` with an explicit tiling policy.

ComfyUI's ``VAE.encode``/``VAE.decode`` catch out-of-memory and silently retry in overlapping tiles. For
OP4KSR that breaks the method (patch-free means no tiles) and, with the ``partitioned`` decode, applies its
1-px shift per tile. So the node runs the VAE's first-stage model itself, under ComfyUI's memory
management (``load_models_gpu`` with the VAE's own estimate), and tiles only when asked:

- ``never`` (default): untiled; out of memory propagates to the node, which reports it.
- ``on_oom``: untiled, and after an out-of-memory error (handled outside the ``except`` block, so the failed
  step's tensors are freed first) the step is redone in tiles.
- ``always``: tiles from the start.

Tiles of the F16 VAE are the exact row bands of ``op4ksr_core.vae.banded`` (seam-free, same result as
untiled, both decode modes); any other VAE (e.g. the stock FLUX VAE) uses ComfyUI's own tiled encode/decode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import comfy.model_management as mm
import comfy.sd
import torch

from ..op4ksr_core.vae import F16VAE
from ..op4ksr_core.vae.banded import DEFAULT_BAND_VALUES, Bands, decode_banded, encode_banded
from .f16_vae import ComfyF16Module
from .runtime import is_oom

log = logging.getLogger(__name__)

VAE_TILING = ("never", "on_oom", "always")
BAND_BUFFERS = 8  # band-sized temporaries alive at once in a banded layer (input, padded, output, norm)
MIN_BAND_VALUES = 1 << 12  # bands shrink 4x per out-of-memory error down to this many input values


def check_vae_tiling(policy: str) -> str:
    if policy not in VAE_TILING:
        raise ValueError(f"vae_tiling={policy!r}; choose one of {', '.join(VAE_TILING)}")
    return policy


def _f16(vae: comfy.sd.VAE) -> F16VAE | None:
    module = getattr(vae, "first_stage_model", None)
    return module.vae if isinstance(module, ComfyF16Module) else None


def _banded(vae: comfy.sd.VAE, run: Callable[[Bands], torch.Tensor], what: str) -> torch.Tensor:
    """``run(bands)`` with bands of DEFAULT_BAND_VALUES, shrunk 4x after each out-of-memory error."""
    values = DEFAULT_BAND_VALUES
    while True:
        mm.load_models_gpu(
            [vae.patcher], memory_required=BAND_BUFFERS * values * 4, force_full_load=vae.disable_offload
        )
        log.info("OP4KSR: tiled VAE %s in row bands of %d values", what, values)
        failed = False
        try:
            return run(Bands(compute=vae.device, store=vae.output_device, band_values=values))
        except Exception as e:  # torch's OOM types, and accelerator errors reporting OOM (runtime.is_oom)
            if not is_oom(e) or values // 4 < MIN_BAND_VALUES:
                raise
            failed = True
        if failed:  # outside the except block: the failed bands are released first
            mm.soft_empty_cache()
            values //= 4


def encode_untiled(vae: comfy.sd.VAE, pixels: torch.Tensor) -> torch.Tensor:
    """Latent [B, C, h, w] of ``pixels`` [B, H, W, 3] in [0, 1] (ComfyUI IMAGE layout), whole image at once."""
    pixels = pixels.movedim(
        -1, 1
    )  # a channels-last view, as VAE.encode passes it (same conv kernels, same bits)
    mm.load_models_gpu(
        [vae.patcher],
        memory_required=vae.memory_used_encode(pixels.shape, vae.vae_dtype),
        force_full_load=vae.disable_offload,
    )
    x = vae.process_input(pixels).to(vae.device, vae.vae_dtype)
    # Contiguous like VAE.encode's output buffer (the F16 mean is a view of the moments): same sampler bits.
    return vae.first_stage_model.encode(x).to(vae.output_device).float().contiguous()


def encode_tiled(vae: comfy.sd.VAE, pixels: torch.Tensor) -> torch.Tensor:
    """As :func:`encode_untiled`, in tiles (exact row bands for the F16 VAE)."""
    f16 = _f16(vae)
    if f16 is None:
        return vae.encode_tiled(pixels).float()
    x = vae.process_input(pixels.movedim(-1, 1))
    out = _banded(vae, lambda bands: encode_banded(f16, x, bands), "encode")
    return out.to(vae.output_device).float().contiguous()


def decode_untiled(vae: comfy.sd.VAE, latent: torch.Tensor) -> torch.Tensor:
    """Image [B, 3, H, W] in [0, 1] from a latent, whole image at once, left on the VAE's device.

    The node's next steps (crop, colour correction) run on the GPU: a trip through ComfyUI's intermediate
    device here would move the 4K image to the CPU and back (two 200 MB copies) before its one pinned copy out.
    """
    mm.load_models_gpu(
        [vae.patcher],
        memory_required=vae.memory_used_decode(latent.shape, vae.vae_dtype),
        force_full_load=vae.disable_offload,
    )
    out = vae.first_stage_model.decode(latent.to(vae.device, vae.vae_dtype))
    return vae.process_output(out.float())


def decode_tiled(vae: comfy.sd.VAE, latent: torch.Tensor) -> torch.Tensor:
    """As :func:`decode_untiled`, in tiles (exact row bands, partitioned shift once, for the F16 VAE)."""
    f16 = _f16(vae)
    if f16 is None:
        return vae.decode_tiled(latent).movedim(-1, 1).float()
    out = _banded(vae, lambda bands: decode_banded(f16, latent, bands), "decode")
    return vae.process_output(out.to(vae.output_device).float())


def vae_step(
    untiled: Callable[[], torch.Tensor], tiled: Callable[[], torch.Tensor], policy: str, what: str
) -> torch.Tensor:
    """Run one VAE step under ``policy`` (see module docstring)."""
    if check_vae_tiling(policy) == "always":
        return tiled()
    if policy == "never":
        return untiled()
    failed = False
    try:
        return untiled()
    except Exception as e:  # torch's OOM types, and accelerator errors reporting OOM (runtime.is_oom)
        if not is_oom(e):
            raise
        failed = True  # retried below, outside this block, once the failed step's tensors are released
    if failed:
        mm.soft_empty_cache()
        log.warning("OP4KSR: out of memory in the untiled VAE %s; vae_tiling=on_oom, retrying in tiles", what)
    return tiled()


def encode(vae: comfy.sd.VAE, pixels: torch.Tensor, policy: str) -> torch.Tensor:
    """The node's encode: ``pixels`` [B, H, W, 3] in [0, 1] -> latent, tiled only as ``policy`` allows."""
    return vae_step(lambda: encode_untiled(vae, pixels), lambda: encode_tiled(vae, pixels), policy, "encode")


def decode(vae: comfy.sd.VAE, latent: torch.Tensor, policy: str) -> torch.Tensor:
    """The node's decode: latent -> [B, 3, H, W] in [0, 1], tiled only as ``policy`` allows (on the VAE's device
    when untiled, on ComfyUI's intermediate device when tiled)."""
    return vae_step(lambda: decode_untiled(vae, latent), lambda: decode_tiled(vae, latent), policy, "decode")
