"""OP4KSR settings that travel with the weights: the ``sr4k.op4ksr`` safetensors metadata and its defaults.

A LoRA, a full fine-tune or an F16 VAE written by our trainers carries, under :data:`METADATA_KEY`, a JSON
object with the inference settings it was trained for (any field may be missing = unknown)::

    {"t_star": 0.5, "input_mode": "direct", "rfr_mode": "ntk", "rfr_alpha": 1.0, "reference_tokens": 64,
     "decode_mode": "aligned", "canvas_long_side": 4096, "guidance": 3.5}

Nodes and the CLI resolve each setting with :func:`resolve`: an explicit value (a widget or flag that is not
``auto``; ``t_star`` 0 means auto) wins, then the weights' metadata, then :data:`DEFAULTS`. The decode mode's
default depends on the VAE file (:func:`default_decode_mode`): ``aligned`` for the raw BFL-layout FLUX
``ae.safetensors``, ``partitioned`` for a diffusers-layout F16 VAE (Diffusion-4K SC-VAE, UltraFlux, ours).
Evidence for the defaults: docs/op4ksr.md Appendix D.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .onestep import DEFAULT_GUIDANCE, DEFAULT_INPUT_MODE, DEFAULT_T_STAR, INPUT_MODES
from .rfr import FLUX_TRAIN_GRID, RFR_MODES, RFRConfig
from .vae.config import DECODE_MODES
from .vae.keys import detect_vae_layout, extract_vae_state_dict

__all__ = [
    "AUTO",
    "METADATA_KEY",
    "OP4KSRSettings",
    "DEFAULTS",
    "DEFAULT_INPUT_MODE",
    "AMBIGUOUS_DIFFUSERS_VAE",
    "default_decode_mode",
    "auto_decode_mode",
    "to_metadata",
    "from_metadata",
    "read_metadata",
    "read_settings",
    "files_settings",
    "rfr_config",
    "resolve",
    "from_widgets",
]

log = logging.getLogger(__name__)

METADATA_KEY = "sr4k.op4ksr"
AUTO = "auto"
DEFAULT_CANVAS_LONG_SIDE = 4096
# A safetensors header larger than this is not a header (the format caps it at 100 MB).
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class OP4KSRSettings:
    """Inference settings of OP4KSR weights; ``None`` = unknown (resolved later from defaults).

    t_star: flow time of the one model call, in (0, 1]. input_mode: ``direct`` | ``flow``
    (``op4ksr_core.onestep``). rfr_mode / rfr_alpha / reference_tokens: RoPE base-frequency rescaling
    (``op4ksr_core.rfr``). decode_mode: ``aligned`` | ``partitioned`` (F16 VAE tail). canvas_long_side: the
    output long side (px) the weights were trained for. guidance: the FLUX-dev guidance-embedding value the
    weights were trained with (it modulates every block; used when no conditioning carries its own).
    """

    t_star: float | None = None
    input_mode: str | None = None
    rfr_mode: str | None = None
    rfr_alpha: float | None = None
    reference_tokens: int | None = None
    decode_mode: str | None = None
    canvas_long_side: int | None = None
    guidance: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.t_star is not None and not (_number(self.t_star) and 0 < self.t_star <= 1):
            problems.append(f"t_star={self.t_star!r} (a number in (0, 1], e.g. 0.5)")
        for name, allowed in (
            ("input_mode", INPUT_MODES),
            ("rfr_mode", RFR_MODES),
            ("decode_mode", DECODE_MODES),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                problems.append(f"{name}={value!r} (one of {', '.join(allowed)})")
        if self.rfr_alpha is not None and not (_number(self.rfr_alpha) and 0 < self.rfr_alpha < math.inf):
            problems.append(f"rfr_alpha={self.rfr_alpha!r} (a number > 0)")
        if self.guidance is not None and not (_number(self.guidance) and self.guidance >= 0):
            problems.append(f"guidance={self.guidance!r} (a number >= 0, e.g. 3.5)")
        for name in ("reference_tokens", "canvas_long_side"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1
            ):
                problems.append(f"{name}={value!r} (a whole number >= 1)")
        if problems:
            raise ValueError(f"bad OP4KSR settings: {'; '.join(problems)}")
        if self.t_star is not None:
            object.__setattr__(self, "t_star", float(self.t_star))
        for name in ("rfr_alpha", "guidance"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    def known(self) -> dict[str, Any]:
        """The fields that are set (not None)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


DEFAULTS = OP4KSRSettings(
    t_star=DEFAULT_T_STAR,
    input_mode=DEFAULT_INPUT_MODE,
    rfr_mode="ntk",
    rfr_alpha=1.0,
    reference_tokens=int(FLUX_TRAIN_GRID[0]),
    decode_mode=None,  # depends on the VAE file: default_decode_mode(layout)
    canvas_long_side=DEFAULT_CANVAS_LONG_SIDE,
    guidance=DEFAULT_GUIDANCE,
)
"""What ``auto`` means without metadata (one source for node, CLI and core)."""


AMBIGUOUS_DIFFUSERS_VAE = (
    "sr4k: this VAE file is in diffusers layout and carries no sr4k metadata, so decode_mode auto assumes "
    "'partitioned' (the F16 decoders published that way: Diffusion-4K SC-VAE, UltraFlux). If it is the raw FLUX.1 "
    "VAE (e.g. FLUX.1-dev's vae/diffusion_pytorch_model.safetensors), set decode_mode to 'aligned': 'partitioned' "
    "would shift its output one pixel down and right and leave a line along the top and left edges."
)
"""Logged when ``auto`` falls back to the key layout for a diffusers-layout file (docs/op4ksr.md §9.3)."""


def default_decode_mode(vae_layout: str) -> str:
    """``aligned`` for a BFL-layout FLUX VAE (the raw ``ae.safetensors``), ``partitioned`` for diffusers layout.

    Raw FLUX weights decode right only without the partitioned one-pixel shift (docs/op4ksr.md §9.3); the F16 VAEs
    published in diffusers layout (SC-VAE, UltraFlux) and our F16 decoder trainer use the partitioned decode.
    """
    if vae_layout == "bfl":
        return "aligned"
    if vae_layout == "diffusers":
        return "partitioned"
    raise ValueError(f"VAE layout {vae_layout!r} unknown; expected 'bfl' or 'diffusers'")


def auto_decode_mode(vae_state_dict: Mapping[str, Any], *layers: OP4KSRSettings | None) -> str:
    """What decode ``auto`` means for these VAE weights: the first ``layers`` entry that knows it (the VAE file's
    metadata, then the transformer weights'), else :func:`default_decode_mode` of the weights' key layout."""
    for layer in layers:
        if layer is not None and layer.decode_mode is not None:
            return layer.decode_mode
    layout = detect_vae_layout(extract_vae_state_dict(vae_state_dict))
    if layout == "diffusers":
        # The key layout does not tell an F16 decoder from the raw FLUX VAE saved by diffusers (FLUX.1-dev's
        # vae/diffusion_pytorch_model.safetensors), and the wrong mode shifts the image by one pixel.
        log.warning(AMBIGUOUS_DIFFUSERS_VAE)
    return default_decode_mode(layout)


def to_metadata(settings: OP4KSRSettings) -> dict[str, str]:
    """``{METADATA_KEY: JSON of the known fields}``, to merge into a safetensors ``metadata`` dict."""
    return {METADATA_KEY: json.dumps(settings.known(), sort_keys=True)}


def from_metadata(meta: Mapping[str, str] | None) -> OP4KSRSettings | None:
    """Settings from a safetensors metadata dict; None when it has no :data:`METADATA_KEY`.

    ValueError (naming the key and the problem) on malformed JSON, a non-object or bad values. Fields this
    version does not know (written by a newer sr4k) are ignored, so newer files stay loadable.
    """
    if not meta or METADATA_KEY not in meta:
        return None
    raw = meta[METADATA_KEY]
    try:
        data = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"metadata {METADATA_KEY!r} is not valid JSON ({err}): {str(raw)[:80]!r}") from err
    if not isinstance(data, dict):
        raise ValueError(f"metadata {METADATA_KEY!r} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(OP4KSRSettings)}
    unknown = sorted(set(data) - names)
    if unknown:
        log.info("metadata %r: ignoring fields this sr4k does not know: %s", METADATA_KEY, unknown)
    try:
        return OP4KSRSettings(**{k: v for k, v in data.items() if k in names})
    except ValueError as err:
        raise ValueError(f"metadata {METADATA_KEY!r}: {err}") from err


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its header only (no tensor is read).

    Format: 8-byte little-endian header length, then that many bytes of JSON. ValueError if the file is not one.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
        (size,) = struct.unpack("<Q", head)
        if size > _MAX_HEADER_BYTES:
            raise ValueError(f"{path} is not a safetensors file (header length {size} bytes)")
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a safetensors file (its header is not JSON: {err})") from err
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def read_settings(path: str | Path) -> OP4KSRSettings | None:
    """The :data:`METADATA_KEY` settings of a weights file, or None (no key, or not a safetensors file)."""
    if Path(path).suffix.lower() not in (".safetensors", ".sft"):
        return None  # .gguf, .pth, ...: no sr4k metadata by construction
    try:
        return from_metadata(read_metadata(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def files_settings(*paths: str | Path | None) -> OP4KSRSettings | None:
    """Merged settings of weight files, earlier files first (e.g. the LoRA, then the transformer); None if no
    file carries any (base FLUX, as far as the files tell)."""
    found = [s for s in (read_settings(p) for p in paths if p) if s is not None]
    return resolve(*found, defaults=OP4KSRSettings()) if found else None


def rfr_config(settings: OP4KSRSettings | None) -> RFRConfig:
    """The RFR config of (resolved) settings: mode, alpha and a square reference grid."""
    s = resolve(settings)
    return RFRConfig(mode=s.rfr_mode, alpha=s.rfr_alpha, reference_grid=(float(s.reference_tokens),) * 2)


def resolve(*layers: OP4KSRSettings | None, defaults: OP4KSRSettings = DEFAULTS) -> OP4KSRSettings:
    """Per field, the first known value of ``layers`` (highest priority first), else ``defaults``.

    Typical call: ``resolve(from_widgets(...), model_settings, vae_settings)``.
    """
    out = {}
    for f in fields(OP4KSRSettings):
        value = getattr(defaults, f.name)
        for layer in layers:
            if layer is not None and getattr(layer, f.name) is not None:
                value = getattr(layer, f.name)
                break
        out[f.name] = value
    return replace(defaults, **out)


def from_widgets(**values: Any) -> OP4KSRSettings:
    """Explicit settings from widget/flag values: ``"auto"``, None and ``t_star`` 0 mean unknown."""
    clean = {}
    for name, value in values.items():
        if value is None or value == AUTO or (name == "t_star" and value == 0):
            continue
        clean[name] = value
    return OP4KSRSettings(**clean)
