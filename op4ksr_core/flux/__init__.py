"""The FLUX.1 transformer on the headless path: ``keys`` (BFL <-> diffusers layouts), ``loader`` (weights ->
diffusers ``FluxTransformer2DModel``) and ``forward`` (one velocity call on a latent, the RFR swap)."""

from .detect import FLUX_TRANSFORMER, flux_config
from .forward import patch_size_of, set_rfr, velocity
from .keys import bfl_to_diffusers, convert_flux_state_dict, detect_flux_layout, diffusers_to_bfl
from .loader import load_flux_transformer

__all__ = [
    "FLUX_TRANSFORMER",
    "bfl_to_diffusers",
    "convert_flux_state_dict",
    "detect_flux_layout",
    "diffusers_to_bfl",
    "flux_config",
    "load_flux_transformer",
    "patch_size_of",
    "set_rfr",
    "velocity",
]
