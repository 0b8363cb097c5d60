"""Recognise a FLUX.1 VAE state dict and read its :class:`VaeConfig` from key shapes.

Registered with :mod:`srkit.registry` as ``"flux_vae"`` (layouts ``"bfl"`` and ``"diffusers"``, optionally under
``first_stage_model.`` or ``vae.``). The weights say the channel widths and the latent width; the F16 geometry
(stride-2 input, final x2) and FLUX's latent scale/shift are ours (``FLUX_F16``): the stride changes no weight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from torch import Tensor

from ...srkit.registry import Architecture, Descriptor, KeyCondition, register
from .config import FLUX_F16, VaeConfig
from .keys import LAYOUT_MARKERS, VAE_PREFIXES, detect_vae_layout, extract_vae_state_dict, to_diffusers_layout

__all__ = ["FLUX_VAE", "read_vae_config", "vae_descriptor"]

_DOWN = re.compile(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.conv1\.weight$")


def read_vae_config(sd: Mapping[str, Tensor], base: VaeConfig = FLUX_F16) -> VaeConfig:
    """``base`` with the channel widths, blocks per level and latent width of a diffusers-layout VAE state dict.

    Fields the weights do not hold (or that a partial checkpoint lacks) keep ``base``'s values; the loader's key
    check then names what is missing.
    """
    levels: dict[int, int] = {}
    blocks = 0
    for key, value in sd.items():
        if m := _DOWN.match(key):
            level, block = int(m.group(1)), int(m.group(2))
            if block == 0:
                levels[level] = int(value.shape[0])
            if level == 0:
                blocks = max(blocks, block + 1)
    fields: dict[str, object] = {}
    if levels and sorted(levels) == list(range(len(levels))):
        fields["block_out_channels"] = tuple(levels[i] for i in range(len(levels)))
    if blocks:
        fields["layers_per_block"] = blocks
    if (conv_in := sd.get("decoder.conv_in.weight")) is not None and conv_in.ndim == 4:
        fields["latent_channels"] = int(conv_in.shape[1])
    if (image_in := sd.get("encoder.conv_in.weight")) is not None and image_in.ndim == 4:
        fields["in_channels"] = int(image_in.shape[1])
    if (image_out := sd.get("decoder.conv_out.weight")) is not None and image_out.ndim == 4:
        fields["out_channels"] = int(image_out.shape[0])
    return replace(base, **fields)


def vae_descriptor(state_dict: Mapping[str, Tensor]) -> Descriptor:
    """The registry's descriptor of a FLUX VAE state dict (F16 geometry)."""
    vae = extract_vae_state_dict(state_dict)
    prefix = next((p for p in VAE_PREFIXES if any(k.startswith(p) for k in state_dict)), "")
    layout = detect_vae_layout(vae)
    config = read_vae_config(to_diffusers_layout(vae))
    return Descriptor(
        "flux_vae",
        layout,
        config,
        scale=config.downscale,
        size_multiple=config.downscale,
        latent_channels=config.latent_channels,
        prefix=prefix,
    )


FLUX_VAE = register(
    Architecture(
        "flux_vae",
        "a FLUX.1 VAE (ae.safetensors, or a diffusers-layout F16 VAE)",
        KeyCondition(any_of=tuple(m for markers in LAYOUT_MARKERS.values() for m in markers)),
        vae_descriptor,
    )
)
