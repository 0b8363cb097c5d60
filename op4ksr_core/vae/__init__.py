"""The F16 VAE: the FLUX.1 autoencoder at 16x compression (docs/op4ksr.md §9).

``config`` (geometry presets), ``layers`` and ``tail`` (building blocks, the chunked full-size decoder tail),
``model`` (:class:`F16VAE`), ``keys`` (BFL <-> diffusers key layouts), ``detect`` (registry entry, config from shapes), ``loader`` (weights -> F16VAE) and
``latent_format`` (scale/shift of the latent space).
"""

from .config import DECODE_MODES, FLUX_F8, FLUX_F16, VaeConfig
from .detect import FLUX_VAE, read_vae_config
from .latent_format import F16_LATENT, LatentFormat
from .loader import load_f16_vae
from .model import DEFAULT_CHUNK_ROWS, F16VAE

__all__ = [
    "DECODE_MODES",
    "DEFAULT_CHUNK_ROWS",
    "F16VAE",
    "F16_LATENT",
    "FLUX_F16",
    "FLUX_F8",
    "FLUX_VAE",
    "LatentFormat",
    "VaeConfig",
    "load_f16_vae",
    "read_vae_config",
]
