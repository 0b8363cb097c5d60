"""Read a GTASRConfig from a state dict's keys and shapes, and recognise dicts that are not GTASR.

Checkpoints carry no config, so (like spandrel) the hyperparameters are deduced from tensor shapes:
the first conv gives model_channels and the unshuffle factor, block names give the levels and blocks,
Swin tables give heads and window. Keys must already be normalised (see ``normalize_keys``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from torch import Tensor

from ..srkit.registry import Architecture, CheckpointError, Descriptor, KeyCondition, describe, register
from .config import GTASRConfig

__all__ = ["GTASR", "GTASRCheckpointError", "describe_foreign", "infer_config", "normalize_keys"]

EXPECTED_FILES = (
    "GTASR_final_phase.pth (or GTASR_first_phase.pth) from the Hugging Face repo Blaze-UESTC/GTASR"
)
_FIRST_CONV = re.compile(r"^model\.enc\.(\d+)x\1_conv\.weight$")


class GTASRCheckpointError(CheckpointError):
    """The weights are not (or not a complete, supported) GTASR network."""


def normalize_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip DataParallel ``module.`` prefixes; add the wrapper's ``model.`` prefix if a bare SongUNet."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    if not any(k.startswith("model.") for k in out) and any(
        k.startswith(("enc.", "dec.", "map_layer0.")) for k in out
    ):
        out = {f"model.{k}": v for k, v in out.items()}
    return out


def describe_foreign(state_dict: Mapping[str, Tensor]) -> str:
    """A short guess of what a non-GTASR state dict is (``srkit.registry.describe``), e.g. 'a LoRA'."""
    return describe(state_dict)


def _not_gtasr(state_dict: Mapping[str, Tensor], source: str) -> GTASRCheckpointError:
    keys = list(state_dict)
    example = f" (e.g. key {keys[0]!r}, {len(keys)} tensors)" if keys else " (it is empty)"
    return GTASRCheckpointError(
        f"{source} is not a GTASR network: it looks like {describe_foreign(state_dict)}{example}. "
        f"Expected the GTASR/CTMSR weights, e.g. {EXPECTED_FILES}, whose keys look like "
        "'model.enc.64x64_conv.weight'."
    )


def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise GTASRCheckpointError(
            f"incomplete GTASR state dict: {key!r} is missing (the file may be "
            "damaged or from another architecture)"
        )
    return tuple(sd[key].shape)


def _ratio(num: int, den: int, what: str) -> int:
    if den <= 0 or num % den:
        raise GTASRCheckpointError(f"unsupported GTASR variant: {what} = {num}/{den} is not an integer")
    return num // den


def _resample_taps(sd: Mapping[str, Tensor]) -> tuple[float, ...]:
    buf = next((v for k, v in sd.items() if k.endswith(".resample_filter")), None)
    if buf is None:
        return (1.0, 1.0)
    row = buf.reshape(buf.shape[-2], buf.shape[-1])[0].double()
    return tuple(round(float(t), 4) for t in (row / row[0]))


def _swin_params(sd: Mapping[str, Tensor], prefix: str) -> dict[str, object]:
    """Swin hyperparameters from one Swin layer (``prefix`` ends in 'swin_layer.') and all tables."""
    embed = _shape(sd, prefix + "patch_embed.proj.weight")[0]
    depth = sum(1 for k in sd if k.startswith(prefix + "blocks.") and k.endswith(".norm1.weight"))
    heads = _shape(sd, prefix + "blocks.0.attn.relative_position_bias_table")[1]
    hidden = _shape(sd, prefix + "blocks.0.mlp.fc1.weight")[0]
    sides = [math.isqrt(v.shape[0]) for k, v in sd.items() if k.endswith("relative_position_bias_table")]
    return dict(
        swin_embed_dim=embed,
        swin_num_heads=heads,
        swin_depth=depth,
        swin_window=(max(sides) + 1) // 2,
        swin_mlp_ratio=hidden / embed,
        swin_use_conv=prefix + "conv.weight" in sd,
    )


def infer_config(state_dict: Mapping[str, Tensor], source: str = "state dict") -> GTASRConfig:
    """The GTASRConfig whose network has this state dict's keys and shapes.

    Raises GTASRCheckpointError (a ValueError) naming what the dict looks like when it is not GTASR.
    """
    sd = normalize_keys(state_dict)
    first = next((m for m in map(_FIRST_CONV.match, sd) if m), None)
    if first is None:
        raise _not_gtasr(sd, source)
    res0 = int(first.group(1))
    mc, unshuffled = _shape(sd, first.group(0))[:2]
    in_ch = _shape(sd, "model.conv_last.weight")[0]
    scale = math.isqrt(_ratio(unshuffled, in_ch, "first-conv inputs / image channels") - 1)
    levels = 0
    while f"model.enc.{res0 >> levels}x{res0 >> levels}_block0.conv0.weight" in sd:
        levels += 1
    num_blocks = sum(1 for k in sd if re.fullmatch(rf"model\.enc\.{res0}x{res0}_block\d+\.conv0\.weight", k))
    if levels == 0 or num_blocks == 0:
        raise GTASRCheckpointError(
            f"incomplete GTASR state dict in {source}: no encoder blocks under "
            f"'model.enc.{res0}x{res0}_block0'"
        )
    mults, attn = [], []
    for level in range(levels):
        r = res0 >> level
        mults.append(_ratio(_shape(sd, f"model.enc.{r}x{r}_block0.conv0.weight")[0], mc, "channel_mult"))
        if f"model.enc.{r}x{r}_block0.swin_layer.patch_embed.proj.weight" in sd:
            attn.append(r)
    low = res0 >> (levels - 1)
    emb, noise = _shape(sd, "model.map_layer0.weight")
    try:
        return GTASRConfig(
            in_channels=in_ch,
            scale=scale,
            model_channels=mc,
            channel_mult=tuple(mults),
            channel_mult_emb=_ratio(emb, mc, "channel_mult_emb"),
            channel_mult_noise=_ratio(noise, mc, "channel_mult_noise"),
            num_blocks=num_blocks,
            train_resolution=res0,
            attn_resolutions=tuple(attn),
            resample_filter=_resample_taps(sd),
            **_swin_params(sd, f"model.dec.{low}x{low}_in0.swin_layer."),
        )
    except ValueError as err:
        if isinstance(err, GTASRCheckpointError):
            raise
        raise GTASRCheckpointError(f"{source} describes an unsupported GTASR variant: {err}") from err


def _descriptor(state_dict: Mapping[str, Tensor]) -> Descriptor:
    config = infer_config(state_dict)
    layout = "basicsr" if any(k.startswith("model.") for k in state_dict) else "songunet"
    return Descriptor("gtasr", layout, config, scale=config.scale, size_multiple=config.lr_multiple)


GTASR = register(Architecture("gtasr", "a GTASR network", KeyCondition(all_of=("enc.", "dec.")), _descriptor))
"""GTASR weights (``model.enc.64x64_conv.weight`` ...; bare SongUNet keys and ``module.`` prefixes too)."""
