"""FLOP counts for the benchmarks: analytical for the FLUX transformer, ``FlopCounterMode`` on meta tensors
for the rest (no memory, exact op shapes, any size).

:func:`flux_flops` charges every linear layer to the tokens it sees, joint attention 4 L^2 d per block and the
per-sample modulation / embedders once; ``tests/unit/test_bench_cost.py`` checks it equals torch's FLOP counter.
docs/op4ksr.md §10 counted 2 x parameters x tokens + attention (:func:`flux_flops_2pl`), which also
charges the per-sample modulation weights (3.2 B of FLUX.1-dev's 11.9 B parameters) to every token.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from sr4k.gtasr_core import GTASRConfig, GTASRNet

# black-forest-labs flux-dev as diffusers FluxTransformer2DModel kwargs (docs/op4ksr.md Appendix A).
FLUX_DEV: dict[str, Any] = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
FLUX_PATCH = 2  # FLUX packs 2x2 latent pixels per token
TIMESTEP_DIM = 256  # sinusoidal timestep / guidance embedding width


def image_tokens(px: int, vae_downscale: int, patch: int = FLUX_PATCH) -> int:
    """Tokens of a square px x px image: (px / (downscale * patch))^2."""
    side = px // (vae_downscale * patch)
    if side * vae_downscale * patch != px:
        raise ValueError(
            f"{px} px is not a multiple of {vae_downscale * patch} (VAE {vae_downscale} x patch {patch})"
        )
    return side * side


def flux_flops(cfg: dict[str, Any], n_img: int, n_txt: int) -> dict[str, float]:
    """Forward FLOPs (2 per multiply-add) of a diffusers FluxTransformer2DModel, batch 1.

    Per block, on its L = n_img + n_txt tokens: QKV 3d^2, output d^2, MLP 2 r d^2 (double blocks: one set per
    stream, each on its own tokens; single blocks: fused on all L), i.e. 2 (4 + 2 r) d^2 L; joint attention
    QK^T and AV: 4 L^2 d. Once per sample: timestep/guidance/pooled-text embedders, AdaLN modulations
    (6d per stream per double block, 3d per single block, 2d final). Per token: x/context embedders, proj_out.
    """
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    r = 4.0  # FLUX mlp_ratio
    blocks = cfg["num_layers"] + cfg["num_single_layers"]
    seq = n_img + n_txt
    linear = 2 * (4 + 2 * r) * d * d * seq * blocks
    attention = 4 * seq * seq * d * blocks
    embed = (
        2 * d * (cfg["in_channels"] * n_img + cfg["joint_attention_dim"] * n_txt + cfg["in_channels"] * n_img)
    )
    t_emb = 2 * (TIMESTEP_DIM * d + d * d) * (2 if cfg["guidance_embeds"] else 1)
    pooled = 2 * (cfg["pooled_projection_dim"] * d + d * d)
    modulation = 2 * d * d * (2 * 6 * cfg["num_layers"] + 3 * cfg["num_single_layers"] + 2)
    return {
        "exact": linear + attention + embed + t_emb + pooled + modulation,
        "attention": attention,
        "linear_tokens": linear,
    }


def flux_flops_2pl(params: int, n_img: int, n_txt: int, cfg: dict[str, Any]) -> float:
    """docs/op4ksr.md §10's convention: 2 x parameters x tokens + joint attention."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    seq = n_img + n_txt
    return 2 * params * seq + 4 * seq * seq * d * (cfg["num_layers"] + cfg["num_single_layers"])


def meta_flops(fn: Any, *args: Any) -> int:
    """FLOPs of ``fn(*args)`` counted by ``FlopCounterMode`` (use meta tensors: free at any size)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops()


def gtasr_flops(config: GTASRConfig, lr_px: int) -> int:
    """FLOPs of one GTASR network call at LR lr_px^2 (FlopCounterMode on meta tensors)."""
    with torch.device("meta"):
        net = GTASRNet(config).eval()
    s = config.scale
    return meta_flops(
        net,
        torch.empty(1, 3, s * lr_px, s * lr_px, device="meta"),
        1.0,
        torch.empty(1, 3, lr_px, lr_px, device="meta"),
    )
