"""One way to ask "what is this checkpoint?": architecture detection declared as data, configs read from shapes.

Each model family the pack loads registers an :class:`Architecture` (``gtasr_core/detect.py``,
``op4ksr_core/flux/detect.py``, ``op4ksr_core/vae/detect.py``; they register when their core is imported):
a :class:`KeyCondition` that recognises its keys and a reader that returns a :class:`Descriptor` with the layout,
the config deduced from tensor shapes and what the model needs. :func:`detect` walks them in order; a state dict
that none claims raises :class:`UnknownCheckpointError`, naming what it looks like (:data:`KINDS` names the
families we recognise, loadable or not). Every loader raises :class:`CheckpointError` (from ``srkit.weights``)
or a subclass of it, so one ``except CheckpointError`` covers bad files of every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .weights import CheckpointError

__all__ = [
    "KINDS",
    "Architecture",
    "CheckpointError",
    "Descriptor",
    "KeyCondition",
    "UnknownCheckpointError",
    "architectures",
    "describe",
    "detect",
    "register",
    "summarize_keys",
]


class UnknownCheckpointError(CheckpointError):
    """No registered architecture recognises the state dict (the message says what it looks like)."""


@dataclass(frozen=True)
class KeyCondition:
    """Key-name test: every fragment in ``all_of`` and at least one in ``any_of`` (if given) occur in some key."""

    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.all_of or self.any_of):
            raise ValueError("KeyCondition needs at least one fragment in all_of or any_of")

    def matches(self, keys: list[str]) -> bool:
        """Whether ``keys`` satisfy the condition (substring tests)."""
        if not all(any(f in k for k in keys) for f in self.all_of):
            return False
        return not self.any_of or any(f in k for k in keys for f in self.any_of)


@dataclass(frozen=True)
class Descriptor:
    """What a checkpoint is and what its model needs.

    arch: ``"gtasr"``, ``"flux_transformer"`` or ``"flux_vae"``. layout: key layout (``"basicsr"``, ``"bfl"``,
    ``"diffusers"``). config: the config read off the tensor shapes (``GTASRConfig``, ``FluxTransformer2DModel``
    kwargs, ``VaeConfig``). scale: output pixels per input pixel per side (VAE: pixels per latent cell).
    size_multiple: the input side must be a multiple of this (pixels; latent cells for the transformer).
    latent_channels: channels of the latent the model reads or writes (None for pixel-space models).
    prefix: wrapper prefix found before the architecture's keys (e.g. ``"model.diffusion_model."``), else "".
    """

    arch: str
    layout: str
    config: Any
    scale: int
    size_multiple: int
    latent_channels: int | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Architecture:
    """A loadable family: ``id`` (Descriptor.arch), ``name`` for messages, key test and shape reader."""

    id: str
    name: str
    condition: KeyCondition
    read: Callable[[Mapping[str, Tensor]], Descriptor]


# Every family we can name in an error message, loadable or not (first match wins; LoRAs before anything
# else, since FLUX LoRA keys also contain ``double_blocks``). Detection of what we load is in the architectures.
KINDS: tuple[tuple[str, KeyCondition], ...] = (
    ("a LoRA", KeyCondition(any_of=("lora_", ".lora_A.", ".lora.down.", ".alpha"))),
    (
        "a FLUX transformer in BFL/ComfyUI layout (e.g. flux1-dev.safetensors)",
        KeyCondition(any_of=("double_blocks.", "single_blocks.")),
    ),
    (
        "a FLUX transformer in diffusers layout",
        KeyCondition(any_of=("single_transformer_blocks.", "x_embedder.")),
    ),
    (
        "a Stable Diffusion checkpoint (UNet with model.diffusion_model.* keys)",
        KeyCondition(any_of=("model.diffusion_model.", "diffusion_model.input_blocks.")),
    ),
    ("a diffusers UNet", KeyCondition(any_of=("time_embedding.",))),
    ("a VAE / autoencoder", KeyCondition(any_of=("decoder.up", "encoder.down"))),
    ("a CLIP text encoder", KeyCondition(any_of=("text_model.",))),
    ("a T5 text encoder", KeyCondition(any_of=("encoder.block.",))),
    ("a GTASR network", KeyCondition(any_of=("map_layer0", "params_ema"))),
    (
        "an ESRGAN/RRDBNet upscaler (load it with ComfyUI's UpscaleModelLoader)",
        KeyCondition(all_of=("conv_first.", "RRDB")),
    ),
    (
        "a SwinIR-style upscaler (load it with ComfyUI's UpscaleModelLoader)",
        KeyCondition(any_of=("residual_group",)),
    ),
)

_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add (or replace, for a re-imported module) ``arch``; detection tries architectures in registration order."""
    _REGISTRY[arch.id] = arch
    return arch


def architectures() -> tuple[Architecture, ...]:
    """The registered architectures, in detection order."""
    return tuple(_REGISTRY.values())


def summarize_keys(keys: list[str], limit: int = 8) -> str:
    """``"a, b, c, ... (n more)"`` for error messages."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def describe(state_dict: Mapping[str, Tensor]) -> str:
    """A short guess of what ``state_dict`` holds, e.g. 'a LoRA', for error messages."""
    keys = [str(k) for k in state_dict]
    for name, condition in KINDS:
        if condition.matches(keys):
            return name
    return (
        f"an unrecognised state dict ({len(keys)} tensors; first keys: {summarize_keys(keys, 4) or 'none'})"
    )


def detect(state_dict: Mapping[str, Tensor], source: str = "state dict") -> Descriptor:
    """The :class:`Descriptor` of the first registered architecture whose keys ``state_dict`` has.

    Raises UnknownCheckpointError naming what the dict looks like when no architecture claims it, and the
    architecture's own CheckpointError when its keys are there but the shapes do not make a supported model.
    """
    keys = [str(k) for k in state_dict]
    if not KINDS[0][1].matches(keys):  # a LoRA of a registered family is not that family
        for arch in _REGISTRY.values():
            if arch.condition.matches(keys):
                return arch.read(state_dict)
    known = (
        ", ".join(a.name for a in _REGISTRY.values()) or "none (import sr4k.gtasr_core / sr4k.op4ksr_core)"
    )
    raise UnknownCheckpointError(
        f"{source} is not a model sr4k loads: it looks like {describe(state_dict)}. Loadable: {known}."
    )
