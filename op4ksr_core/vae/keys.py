"""State-dict layouts of the FLUX.1 VAE: BFL/ComfyUI ``ae.safetensors`` <-> diffusers ``AutoencoderKL``.

BFL layout (``encoder.down.0.block.0.norm1.weight``, ``encoder.mid.attn_1.q.weight`` as a 1×1 conv) and
diffusers layout (``encoder.down_blocks.0.resnets.0.norm1.weight``, ``encoder.mid_block.attentions.0.to_q.weight``
as a Linear). Differences: module names, attention q/k/v/proj_out weights [C, C, 1, 1] vs [C, C], and the decoder
level order (BFL ``decoder.up.{i}`` is indexed by resolution level, applied last-to-first; diffusers
``decoder.up_blocks.{i}`` in order of application, so ``up_blocks.{i}`` = ``up.{n - 1 - i}``).
The F16 VAE uses the same keys and shapes as the F8 FLUX VAE (the stride changes no weight).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from ...srkit.registry import CheckpointError, UnknownCheckpointError, describe, summarize_keys

__all__ = [
    "EXPECTED_VAE",
    "LAYOUT_MARKERS",
    "VAE_PREFIXES",
    "VaeLayout",
    "bfl_to_diffusers_vae",
    "decoder_levels",
    "detect_vae_layout",
    "diffusers_to_bfl_vae",
    "extract_vae_state_dict",
    "to_diffusers_layout",
]


VaeLayout = Literal["bfl", "diffusers"]

# Placeholders in the rename templates below.
_FIELDS = {
    "s": r"encoder|decoder",
    "i": r"\d+",
    "j": r"\d+",
    "r": r"norm1|conv1|norm2|conv2",
    "p": r"weight|bias",
}


@dataclass(frozen=True)
class _Rule:
    """One key template in each layout; ``reverse`` flips the level index ``i``; ``linear`` marks 1×1 conv <-> Linear."""

    bfl: str
    diffusers: str
    reverse: bool = False
    linear: bool = False


def _attn(bfl_name: str, diffusers_name: str, linear: bool = True) -> _Rule:
    return _Rule(
        f"{{s}}.mid.attn_1.{bfl_name}.{{p}}",
        f"{{s}}.mid_block.attentions.0.{diffusers_name}.{{p}}",
        linear=linear,
    )


_RULES: tuple[_Rule, ...] = (
    _Rule("{s}.conv_in.{p}", "{s}.conv_in.{p}"),
    _Rule("{s}.conv_out.{p}", "{s}.conv_out.{p}"),
    _Rule("{s}.norm_out.{p}", "{s}.conv_norm_out.{p}"),
    _Rule("{s}.mid.block_1.{r}.{p}", "{s}.mid_block.resnets.0.{r}.{p}"),
    _Rule("{s}.mid.block_2.{r}.{p}", "{s}.mid_block.resnets.1.{r}.{p}"),
    _attn("norm", "group_norm", linear=False),
    _attn("q", "to_q"),
    _attn("k", "to_k"),
    _attn("v", "to_v"),
    _attn("proj_out", "to_out.0"),
    _Rule("encoder.down.{i}.block.{j}.{r}.{p}", "encoder.down_blocks.{i}.resnets.{j}.{r}.{p}"),
    _Rule(
        "encoder.down.{i}.block.{j}.nin_shortcut.{p}", "encoder.down_blocks.{i}.resnets.{j}.conv_shortcut.{p}"
    ),
    _Rule("encoder.down.{i}.downsample.conv.{p}", "encoder.down_blocks.{i}.downsamplers.0.conv.{p}"),
    _Rule("decoder.up.{i}.block.{j}.{r}.{p}", "decoder.up_blocks.{i}.resnets.{j}.{r}.{p}", reverse=True),
    _Rule(
        "decoder.up.{i}.block.{j}.nin_shortcut.{p}",
        "decoder.up_blocks.{i}.resnets.{j}.conv_shortcut.{p}",
        reverse=True,
    ),
    _Rule("decoder.up.{i}.upsample.conv.{p}", "decoder.up_blocks.{i}.upsamplers.0.conv.{p}", reverse=True),
    # SD-family quant convs have the same names in both layouts; kept so validation can name them.
    _Rule("quant_conv.{p}", "quant_conv.{p}"),
    _Rule("post_quant_conv.{p}", "post_quant_conv.{p}"),
)

# Older diffusers checkpoints name the attention projections query/key/value/proj_attn.
_LEGACY_DIFFUSERS_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_LEGACY_RE = re.compile(r"^((?:encoder|decoder)\.mid_block\.attentions\.0)\.(query|key|value|proj_attn)\.")


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name, alternatives in _FIELDS.items():
        pattern = pattern.replace(re.escape(f"{{{name}}}"), f"(?P<{name}>{alternatives})")
    return re.compile(f"^{pattern}$")


_COMPILED: dict[VaeLayout, list[tuple[re.Pattern[str], _Rule]]] = {
    "bfl": [(_compile(rule.bfl), rule) for rule in _RULES],
    "diffusers": [(_compile(rule.diffusers), rule) for rule in _RULES],
}

_LEVEL_KEY = {
    "bfl": re.compile(r"^decoder\.up\.(\d+)\."),
    "diffusers": re.compile(r"^decoder\.up_blocks\.(\d+)\."),
}


def decoder_levels(sd: Mapping[str, torch.Tensor], layout: VaeLayout) -> int:
    """Number of decoder resolution levels in ``sd`` (needed to reverse the level index)."""
    levels = {int(m.group(1)) for key in sd if (m := _LEVEL_KEY[layout].match(key))}
    return max(levels) + 1 if levels else 0


def _convert(sd: Mapping[str, torch.Tensor], source: VaeLayout) -> dict[str, torch.Tensor]:
    target: VaeLayout = "diffusers" if source == "bfl" else "bfl"
    levels = decoder_levels(sd, source)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in sd.items():
        if source == "diffusers":
            key = _LEGACY_RE.sub(lambda m: f"{m.group(1)}.{_LEGACY_DIFFUSERS_ATTN[m.group(2)]}.", key)
        match = next(((m, rule) for pat, rule in _COMPILED[source] if (m := pat.match(key))), None)
        if match is None:
            unknown.append(key)
            continue
        m, rule = match
        fields = m.groupdict()
        if rule.reverse:
            fields["i"] = str(levels - 1 - int(fields["i"]))
        new_key = getattr(rule, target).format(**fields)
        if rule.linear and fields["p"] == "weight":
            # BFL keeps the attention projections as 1×1 convs [C, C, 1, 1]; diffusers as Linear [C, C].
            tensor = (
                tensor.reshape(tensor.shape[0], -1)
                if target == "diffusers"
                else tensor.reshape(*tensor.shape, 1, 1)
            )
        out[new_key] = tensor
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} key(s) are not part of a {source}-layout FLUX VAE: {summarize_keys(unknown)}; "
            "pass only the VAE's state dict"
        )
    return out


def bfl_to_diffusers_vae(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BFL/ComfyUI-layout FLUX VAE state dict (``ae.safetensors``) to the diffusers layout."""
    return _convert(sd, "bfl")


def diffusers_to_bfl_vae(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a diffusers-layout FLUX VAE state dict to the BFL/ComfyUI layout (inverse of the above)."""
    return _convert(sd, "diffusers")


# --- layout detection ---------------------------------------------------------------------------------------

LAYOUT_MARKERS: dict[VaeLayout, tuple[str, ...]] = {
    "diffusers": ("encoder.down_blocks.", "encoder.mid_block.", "decoder.up_blocks.", "decoder.mid_block."),
    "bfl": ("encoder.down.", "encoder.mid.", "decoder.up.", "decoder.mid."),
}

# Prefixes under which a VAE sits inside a bigger checkpoint (ComfyUI/LDM full checkpoints; pipeline dumps).
VAE_PREFIXES: tuple[str, ...] = ("first_stage_model.", "vae.")

EXPECTED_VAE = (
    "a FLUX.1 VAE: BFL/ComfyUI `ae.safetensors` (keys like encoder.down.0.block.0.norm1.weight) or diffusers "
    "`vae/diffusion_pytorch_model.safetensors` (keys like encoder.down_blocks.0.resnets.0.norm1.weight), as the "
    "Diffusion-4K / UltraFlux F16 VAEs ship"
)


def extract_vae_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE part of ``sd``: the keys under a known VAE prefix (stripped) if there are any, else ``sd`` itself."""
    for prefix in VAE_PREFIXES:
        sub = {key[len(prefix) :]: value for key, value in sd.items() if key.startswith(prefix)}
        if sub:
            return sub
    return dict(sd)


def detect_vae_layout(sd: Mapping[str, torch.Tensor]) -> VaeLayout:
    """'bfl' or 'diffusers' for a FLUX VAE state dict; CheckpointError saying what ``sd`` is otherwise."""
    found = [layout for layout, markers in LAYOUT_MARKERS.items() if any(k.startswith(markers) for k in sd)]
    if len(found) == 2:
        raise CheckpointError(
            "the VAE state dict mixes BFL keys (encoder.down.*) and diffusers keys (encoder.down_blocks.*); "
            "convert one part with bfl_to_diffusers_vae or diffusers_to_bfl_vae first"
        )
    if not found:
        raise UnknownCheckpointError(
            f"not a VAE state dict: this looks like {describe(sd)}. Expected {EXPECTED_VAE}"
        )
    return found[0]


def to_diffusers_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported FLUX VAE state dict (BFL, diffusers, legacy diffusers attention names, under a checkpoint
    prefix) in the canonical diffusers layout that ``F16VAE`` uses."""
    vae = extract_vae_state_dict(sd)
    if detect_vae_layout(vae) == "bfl":
        return bfl_to_diffusers_vae(vae)
    # A round trip through BFL names normalises legacy names and rejects unknown keys.
    return bfl_to_diffusers_vae(diffusers_to_bfl_vae(vae))
