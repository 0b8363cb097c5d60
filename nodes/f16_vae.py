"""Wrap our F16 VAE as a standard ComfyUI ``VAE`` so core ``VAEEncode``/``VAEDecode`` work with it."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import torch

from ..op4ksr_core.vae import F16VAE
from ..op4ksr_core.vae.memory import decode_memory, encode_memory


class ComfyF16Module(torch.nn.Module):
    """``first_stage_model`` for ComfyUI: ``encode`` -> posterior mean, ``decode`` -> image in [-1, 1].

    A separate module because ``ModelPatcher`` assigns ``model.device``, which ``F16VAE`` exposes
    as a read-only property.
    """

    def __init__(self, vae: F16VAE) -> None:
        super().__init__()
        self.vae = vae

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent)


def make_comfy_vae(model: F16VAE) -> comfy.sd.VAE:
    """A ``comfy.sd.VAE`` whose encode/decode run ``model`` (16x per side, 16 latent channels).

    ComfyUI 0.3.75 has no constructor for a VAE object around a foreign module, so we build the
    weight-less pixel-space VAE (which sets every attribute the VAE methods read) and swap in our
    module, geometry, memory estimates and a fresh ``ModelPatcher`` for it.
    """
    vae = comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})
    down = model.downscale
    module = ComfyF16Module(model.eval())
    vae.first_stage_model = module
    vae.downscale_ratio = down
    vae.upscale_ratio = down
    vae.latent_channels = model.config.latent_channels
    vae.output_channels = model.config.in_channels
    vae.working_dtypes = [torch.bfloat16, torch.float32]
    # Measured working memory (op4ksr_core/vae/memory.py): ComfyUI keeps FLUX loaded when the decode fits.
    vae.memory_used_encode = lambda shape, dtype: encode_memory(shape[2], shape[3], mm.dtype_size(dtype))
    vae.memory_used_decode = lambda shape, dtype: decode_memory(shape[2], shape[3], mm.dtype_size(dtype))
    vae.vae_dtype = mm.vae_dtype(vae.device, vae.working_dtypes)
    module.to(vae.vae_dtype)
    vae.patcher = comfy.model_patcher.ModelPatcher(
        module, load_device=vae.device, offload_device=mm.vae_offload_device()
    )
    vae.size = None
    vae.model_size()
    return vae
