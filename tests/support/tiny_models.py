"""Small models of the exact architecture families, saved in the real checkpoint formats.

Nothing here downloads. Weights are deterministic pseudo-random (fan-in scaled, like the golden
fixtures' rule), generated once per content version into the git-ignored ``.cache/sr4k-test-models``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from comfy_harness import REPO

CACHE = REPO / ".cache" / "sr4k-test-models"

# The smallest FLUX.1 that ComfyUI's UNETLoader detects: hidden 3072 and 24 heads are fixed by
# detection; depth, context and pooled widths shrink (comfyui-harness.md §11).
TINY_FLUX = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=64,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)


def deterministic_tensor(key: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """The golden fixtures' initialisation rule (shared/fixtures/README.md), plus an optional seed."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()) + seed)
    if len(shape) >= 2:
        return (torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))).float()
    if key.endswith(("weight", "scale")):
        return (1 + 0.05 * torch.randn(shape, generator=g)).float()
    return (0.05 * torch.randn(shape, generator=g)).float()


def deterministic_state_dict(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    return {k: deterministic_tensor(k, tuple(s), seed) for k, s in shapes.items()}


def _cached(name: str, build) -> Path:
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        save_file(build(), str(tmp))
        tmp.rename(path)
    return path


def tiny_flux_diffusers_model(seed: int = 0) -> torch.nn.Module:
    """diffusers ``FluxTransformer2DModel`` at :data:`TINY_FLUX` with deterministic weights (float32)."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(**TINY_FLUX)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(deterministic_state_dict(shapes, seed), assign=True)
    return model.eval()


def tiny_flux_bfl_file(seed: int = 0) -> Path:
    """The tiny FLUX in BFL/ComfyUI key layout, bf16 safetensors (what core ``UNETLoader`` reads)."""
    from sr4k.op4ksr_core.flux.keys import diffusers_to_bfl

    def build() -> dict[str, torch.Tensor]:
        sd = tiny_flux_diffusers_model(seed).state_dict()
        return {k: v.to(torch.bfloat16).contiguous() for k, v in diffusers_to_bfl(sd).items()}

    return _cached(f"tiny_flux_bfl_s{seed}_v1.safetensors", build)


def tiny_flux_diffusers_file(seed: int = 0) -> Path:
    """The same tiny FLUX in diffusers key layout, bf16 safetensors (what OP4KSR_LoadModel also reads)."""

    def build() -> dict[str, torch.Tensor]:
        sd = tiny_flux_diffusers_model(seed).state_dict()
        return {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}

    return _cached(f"tiny_flux_diffusers_s{seed}_v1.safetensors", build)


def f16_vae_file(layout: str = "bfl", seed: int = 0) -> Path:
    """A real-size FLUX VAE (the F16 VAE's weights) with deterministic weights, bf16 safetensors."""
    from sr4k.op4ksr_core.vae import F16VAE
    from sr4k.op4ksr_core.vae.keys import diffusers_to_bfl_vae

    def build() -> dict[str, torch.Tensor]:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in F16VAE().state_dict().items()}
        sd = deterministic_state_dict(shapes, seed)
        if layout == "bfl":
            sd = diffusers_to_bfl_vae(sd)
        return {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}

    return _cached(f"f16_vae_{layout}_s{seed}_v1.safetensors", build)


def load(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# The low-res input the OP4KSR server tests use: long side 128 gives 128x96, a multiple of the 32-px token.
OP4KSR_LR_SIZE = (32, 24)  # (width, height)


def install_op4ksr_models(server) -> None:
    """Link the tiny FLUX (as flux1-dev) and the F16 VAE (as ae) into the server's model folders and
    write the example low-res input, the file names the bundled OP4KSR workflows use."""
    import numpy as np
    from PIL import Image

    for folder, name, path in (
        ("diffusion_models", "flux1-dev.safetensors", tiny_flux_bfl_file()),
        ("vae", "ae.safetensors", f16_vae_file("bfl")),
    ):
        link = server.models / folder / name
        if not link.exists():
            link.symlink_to(path)
    rng = np.random.default_rng(0)
    low = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize(OP4KSR_LR_SIZE)
    low.save(server.input_dir / "sr4k_example_lowres.png")
