"""Perceptual distances for GTASR training: LPIPS-VGG as released, or a documented stand-in.

The release uses ``lpips.LPIPS(net='vgg')`` (lpips 0.1.4) on [-1, 1] images (docs/gtasr.md §4).
We build it from local files only: the learned linear heads ship inside the ``lpips`` package; the VGG16
trunk is torchvision's ImageNet file ``vgg16-397923af.pth``, looked up in the torch hub cache (or an
explicit path), so nothing is ever downloaded. ``standin`` is NOT LPIPS: a multi-scale L1 distance for
tests and smoke runs where LPIPS weights are absent; results with it are not comparable to the paper.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...srkit.weights import load_checkpoint
from .losses import PerceptualLoss

__all__ = [
    "PERCEPTUAL_CHOICES",
    "LPIPSUnavailableError",
    "LPIPSVGG",
    "default_vgg16_path",
    "load_lpips_vgg",
    "make_perceptual",
    "standin_perceptual",
]

log = logging.getLogger(__name__)

PERCEPTUAL_CHOICES = ("lpips_vgg", "standin")
VGG16_FILENAME = "vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1
_FETCH_HINT = (
    'fetch it once on a machine with network: python -c "import torchvision; '
    "torchvision.models.vgg16(weights='IMAGENET1K_V1')\" (it lands in $TORCH_HOME/hub/checkpoints), "
    "or pass vgg16_weights=/path/to/" + VGG16_FILENAME
)


class LPIPSUnavailableError(RuntimeError):
    """LPIPS-VGG cannot be built from local files (package or VGG16 weights missing)."""


def default_vgg16_path() -> Path:
    """Where torchvision caches the VGG16 ImageNet weights: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME


class LPIPSVGG(nn.Module):
    """Frozen LPIPS-VGG v0.1 as a per-sample distance: (a, b) [B, 3, H, W] in [-1, 1] -> [B]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSVGG:  # LPIPS stays in eval mode (its heads have dropout)
        return super().train(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.model(a, b).flatten()


def _vgg_trunk_state(trunk: nn.Module, vgg16: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Map torchvision ``features.{i}.{weight,bias}`` onto lpips' ``slice{k}.{i}.*`` (same index i)."""
    out = {}
    for name, param in trunk.named_parameters():
        _, index, kind = name.split(".")
        key = f"features.{index}.{kind}"
        if key not in vgg16 or vgg16[key].shape != param.shape:
            raise LPIPSUnavailableError(
                f"{source} is not torchvision's VGG16 ({key} missing or of shape "
                f"{tuple(vgg16[key].shape) if key in vgg16 else None}); {_FETCH_HINT}"
            )
        out[name] = vgg16[key]
    return out


def load_lpips_vgg(
    vgg16_weights: str | os.PathLike[str] | None = None, device: torch.device | str | None = None
) -> LPIPSVGG:
    """LPIPS-VGG from local files; raises LPIPSUnavailableError saying what is missing and how to fix it."""
    try:
        import lpips  # optional training dependency (lpips 0.1.4 in the release)
    except ImportError as err:
        raise LPIPSUnavailableError(
            "perceptual='lpips_vgg' needs the 'lpips' package (pip install lpips==0.1.4, as in the GTASR "
            "release). For a smoke run without it use perceptual='standin' (NOT LPIPS; numbers are not "
            "comparable to the paper)."
        ) from err
    path = Path(vgg16_weights) if vgg16_weights is not None else default_vgg16_path()
    if not path.is_file():
        raise LPIPSUnavailableError(
            f"LPIPS-VGG needs the VGG16 ImageNet weights, not found at {path}; " + _FETCH_HINT
        )
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # torchvision's deprecated 'pretrained' flag inside lpips
        # pnet_rand=True: build the trunk without torchvision's download; we fill it from ``path`` below.
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    model.net.load_state_dict(_vgg_trunk_state(model.net, load_checkpoint(path), str(path)), strict=True)
    log.info("LPIPS-VGG built from %s and the lpips package's v0.1 linear heads", path)
    return LPIPSVGG(model).to(device=device)


def standin_perceptual(a: Tensor, b: Tensor, levels: int = 3) -> Tensor:
    """NOT LPIPS: mean L1 over ``levels`` 2x average-pooled scales, per sample [B]. For tests/smoke runs."""
    total = a.new_zeros(a.shape[0])
    used = 0
    for _ in range(levels):
        total = total + (a - b).abs().flatten(1).mean(dim=1)
        used += 1
        if min(a.shape[-2:]) < 4:
            break
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return total / used


def make_perceptual(
    name: str, device: torch.device | str | None = None, vgg16_weights: str | os.PathLike[str] | None = None
) -> PerceptualLoss:
    """The perceptual distance named in the config: 'lpips_vgg' (released) or 'standin' (tests only)."""
    if name == "lpips_vgg":
        return load_lpips_vgg(vgg16_weights, device)
    if name == "standin":
        log.warning(
            "perceptual='standin' is a multi-scale L1 stand-in, NOT LPIPS: use it for tests and "
            "smoke runs only"
        )
        return standin_perceptual
    raise ValueError(f"unknown perceptual loss {name!r}; choose from {PERCEPTUAL_CHOICES}")
