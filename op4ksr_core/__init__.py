"""OP4KSR core: F16 VAE, RoPE base-frequency rescaling (RFR), L_AP, the one-step upscale.

Pure PyTorch (+ diffusers for the headless transformer); never imports ComfyUI. The public names
below are the stable API the nodes, CLI, trainer and benchmarks use.
"""

from ..srkit.periodicity import (
    PeriodicityConfig,
    PeriodicityOptions,
    periodicity_loss,
    periodicity_map,
    periodicity_score,
)
from .embedder import RFREmbedder, RFRPosEmbed, grid_from_ids
from .flux.keys import bfl_to_diffusers, convert_flux_state_dict, detect_flux_layout, diffusers_to_bfl
from .geometry import TokenGrid, token_grid
from .onestep import OneStepConfig, one_step_input, one_step_x0, target_size
from .rfr import (
    FLUX_TRAIN_GRID,
    RFR_MODES,
    RFR_PRESETS,
    RFRConfig,
    band_allocation,
    format_allocation_table,
    rescaled_thetas,
)
from .rope import axis_frequencies, flux_ids, flux_image_ids, flux_text_ids
from .vae import DEFAULT_CHUNK_ROWS, F16VAE
from .vae.config import DECODE_MODES, FLUX_F8, FLUX_F16, VaeConfig
from .vae.keys import bfl_to_diffusers_vae, detect_vae_layout, diffusers_to_bfl_vae
from .vae.latent_format import F16_LATENT, LatentFormat
from .vae.loader import load_f16_vae

__all__ = [
    "DECODE_MODES",
    "DEFAULT_CHUNK_ROWS",
    "F16VAE",
    "F16_LATENT",
    "FLUX_F16",
    "FLUX_F8",
    "FLUX_TRAIN_GRID",
    "LatentFormat",
    "OneStepConfig",
    "PeriodicityConfig",
    "PeriodicityOptions",
    "RFRConfig",
    "RFREmbedder",
    "RFRPosEmbed",
    "RFR_MODES",
    "RFR_PRESETS",
    "TokenGrid",
    "VaeConfig",
    "axis_frequencies",
    "band_allocation",
    "bfl_to_diffusers",
    "bfl_to_diffusers_vae",
    "convert_flux_state_dict",
    "detect_flux_layout",
    "detect_vae_layout",
    "diffusers_to_bfl",
    "diffusers_to_bfl_vae",
    "flux_ids",
    "flux_image_ids",
    "flux_text_ids",
    "format_allocation_table",
    "grid_from_ids",
    "load_f16_vae",
    "one_step_input",
    "one_step_x0",
    "periodicity_loss",
    "periodicity_map",
    "periodicity_score",
    "rescaled_thetas",
    "target_size",
    "token_grid",
]
