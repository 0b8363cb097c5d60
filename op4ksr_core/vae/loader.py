"""Build an :class:`F16VAE` from FLUX VAE weights in BFL/ComfyUI or diffusers layout.

The F16 VAE has exactly the FLUX.1 VAE's tensors (docs/op4ksr.md §9.4: the stride changes no weight shape), so
raw FLUX weights (``ae.safetensors``), Diffusion-4K's SC-VAE and UltraFlux's VAE all load here; only the
geometry (stride-2 ``conv_in``, final ×2) and the decode mode come from us.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from ...srkit.registry import CheckpointError, detect, summarize_keys
from ...srkit.weights import load_state_dict
from .config import FLUX_F16, VaeConfig
from .keys import EXPECTED_VAE, to_diffusers_layout
from .model import DEFAULT_CHUNK_ROWS, F16VAE

__all__ = ["check_vae_state_dict", "expected_vae_shapes", "load_f16_vae"]

log = logging.getLogger(__name__)

_QUANT_PREFIXES = ("quant_conv.", "post_quant_conv.")


def expected_vae_shapes(config: VaeConfig) -> dict[str, torch.Size]:
    """Every diffusers-layout key of a VAE with ``config`` and its shape (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = F16VAE(config, decode_mode="aligned")
    return {key: value.shape for key, value in model.state_dict().items()}


def _kind_error(sd: Mapping[str, torch.Tensor], config: VaeConfig) -> str | None:
    """A message if ``sd`` is a VAE of another family (quant convs, other latent width), else None."""
    quant = sorted(k for k in sd if k.startswith(_QUANT_PREFIXES))
    conv_in = sd.get("decoder.conv_in.weight")
    latent = int(conv_in.shape[1]) if conv_in is not None and conv_in.ndim == 4 else None
    if not quant and latent in (None, config.latent_channels):
        return None
    family = "an SD1/SDXL VAE" if latent == 4 else "a VAE of another family"
    return (
        f"this is {family} (latent channels {latent}; quant convs: {', '.join(quant) or 'none'}), not the FLUX.1 VAE "
        f"({config.latent_channels} latent channels, no quant_conv/post_quant_conv). Expected {EXPECTED_VAE}"
    )


def check_vae_state_dict(sd: Mapping[str, torch.Tensor], config: VaeConfig = FLUX_F16) -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped keys of a diffusers-layout VAE state dict."""
    kind = _kind_error(sd, config)
    if kind:
        raise CheckpointError(kind)
    expected = expected_vae_shapes(config)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v)}" for k, v in expected.items() if k in sd and sd[k].shape != v
    ]
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {summarize_keys(missing)}")
        halves = {
            half
            for half in ("encoder", "decoder")
            if all(k in missing for k in expected if k.startswith(half))
        }
        if halves:
            problems.append(
                f"the whole {' and '.join(sorted(halves))} is absent (a partial checkpoint: merge it with the "
                "FLUX VAE's other half, e.g. the SC-VAE fine-tunes only the decoder)"
            )
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {summarize_keys(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {len(wrong)}: {summarize_keys(wrong, 4)}")
    raise CheckpointError(
        f"VAE state dict does not match the {config.block_out_channels} FLUX VAE: " + "; ".join(problems)
    )


def _resolve_dtype(sd: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> torch.dtype:
    chosen = dtype if dtype is not None else sd["decoder.conv_out.weight"].dtype
    if not chosen.is_floating_point or torch.finfo(chosen).bits < 16:
        raise ValueError(
            f"VAE dtype {chosen}: convolutions need float32, float16 or bfloat16; pass dtype=torch.bfloat16 "
            "(or torch.float32) to load_f16_vae"
        )
    return chosen


def load_f16_vae(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    decode_mode: str = "auto",
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    config: VaeConfig | None = None,
) -> F16VAE:
    """Build the F16 VAE from FLUX VAE weights in BFL/ComfyUI or diffusers layout.

    path_or_state_dict: a weights file or the VAE tensors (optionally under ``first_stage_model.`` or ``vae.``).
    config: default read from the shapes (``srkit.registry.detect``) on the FLUX F16 geometry. decode_mode: 'partitioned'
    (Diffusion-4K's default: SC-VAE and decoders fine-tuned with it), 'aligned' (raw FLUX VAE weights; see
    docs/op4ksr.md §9.3) or 'auto' (what the nodes and the CLI use: the file's sr4k metadata, else ``aligned`` for
    BFL-layout weights and ``partitioned`` for diffusers layout, see ``settings.auto_decode_mode``). chunk_rows: output rows per chunk of the full-resolution decoder tail. dtype: parameter
    dtype (default: the checkpoint's). device: where the parameters go (default: where the tensors are).
    Returns the module in eval mode; gradients stay enabled on its parameters (use ``torch.no_grad`` to infer).
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        state_dict = load_state_dict(path_or_state_dict)
    elif isinstance(path_or_state_dict, Mapping):
        state_dict = path_or_state_dict
    else:
        raise TypeError(
            f"path_or_state_dict must be a file path or a mapping of str to Tensor, got {type(path_or_state_dict).__name__}"
        )
    sd = to_diffusers_layout(state_dict)  # names what a non-VAE dict is
    if config is None:
        # FLUX's latent scale/shift only hold for its 16-channel latent: other widths are another VAE family.
        kind = _kind_error(sd, FLUX_F16)
        if kind:
            raise CheckpointError(kind)
        found = detect(state_dict)
        if found.arch != "flux_vae":
            raise CheckpointError(f"{found.arch} weights are not a VAE. Expected {EXPECTED_VAE}")
        config = found.config
    check_vae_state_dict(sd, config)
    if decode_mode == "auto":
        from ..settings import auto_decode_mode, read_settings  # settings imports this package

        path = path_or_state_dict if isinstance(path_or_state_dict, (str, os.PathLike)) else None
        decode_mode = auto_decode_mode(state_dict, read_settings(path) if path is not None else None)
    dtype = _resolve_dtype(sd, dtype)
    # Build on the meta device and adopt the tensors (no random init, no second copy of the weights).
    with torch.device("meta"):
        model = F16VAE(config, decode_mode=decode_mode, chunk_rows=chunk_rows)
    model.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}, strict=True, assign=True
    )
    log.info("loaded F16 VAE (%d tensors, %s, decode_mode=%s)", len(sd), dtype, decode_mode)
    return model.eval()
