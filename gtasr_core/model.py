"""EDM preconditioning of GTASR: D(x; sigma, lq) = c_skip(sigma) x + c_out(sigma) F(x, c_noise(sigma), lq).

Karras et al. 2022 (EDM) eq. 7 with GTASR's constants (docs/gtasr.md §2.1): sigma is divided by 0.1
inside c_skip/c_out, c_in = 1 and c_out has no sigma_data factor. At sigma = 0, D(x) = x exactly (the
consistency boundary condition).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import GTASRConfig
from .unet import SongUNet

__all__ = ["GTASRNet", "c_noise", "c_out", "c_skip", "sigma_tensor"]


def c_skip(sigma: Tensor, sigma_data: float = 0.5, sigma_scale: float = 0.1) -> Tensor:
    """c_skip = sigma_data^2 / ((sigma / sigma_scale)^2 + sigma_data^2)."""
    s = sigma / sigma_scale
    return sigma_data**2 / (s**2 + sigma_data**2)


def c_out(sigma: Tensor, sigma_data: float = 0.5, sigma_scale: float = 0.1) -> Tensor:
    """c_out = (sigma / sigma_scale) / sqrt((sigma / sigma_scale)^2 + sigma_data^2)."""
    s = sigma / sigma_scale
    return s / (s**2 + sigma_data**2).sqrt()


def c_noise(sigma: Tensor, offset: float = 0.002) -> Tensor:
    """c_noise = log(sigma + offset) / 4."""
    return (sigma + offset).log() / 4


def sigma_tensor(sigma: float | Tensor, batch: int, device: torch.device) -> Tensor:
    """sigma as a float32 [B] tensor (a Python float, a 0-d tensor, [1] or [B] are accepted)."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=device).reshape(-1)
    if s.numel() == 1:
        return s.expand(batch)
    if s.numel() != batch:
        raise ValueError(
            f"sigma has {s.numel()} values for a batch of {batch}; pass one value or one per image"
        )
    return s


class GTASRNet(nn.Module):
    """The preconditioned GTASR denoiser (reference ``EDMUNet``); its body is ``self.model``.

    forward(x [B, 3, 4h, 4w] in [-1, 1] + noise, sigma float or [B], lq [B, 3, h, w] in [-1, 1])
    -> D(x; sigma, lq) [B, 3, 4h, 4w] float32. h and w must be multiples of ``config.lr_multiple``.
    The body runs in the parameters' dtype; the preconditioning in float32.
    """

    def __init__(self, config: GTASRConfig) -> None:
        super().__init__()
        self.config = config
        self.model = SongUNet(config)

    @property
    def lr_multiple(self) -> int:
        return self.config.lr_multiple

    @property
    def scale(self) -> int:
        return self.config.scale

    def check_inputs(self, x: Tensor, lq: Tensor) -> None:
        """Raise ValueError naming the problem when x / lq do not fit the network."""
        cfg = self.config
        if x.ndim != 4 or lq.ndim != 4:
            raise ValueError(f"x and lq must be 4-D BCHW tensors, got {tuple(x.shape)} and {tuple(lq.shape)}")
        if x.shape[1] != cfg.in_channels or lq.shape[1] != cfg.in_channels:
            raise ValueError(f"x and lq need {cfg.in_channels} channels, got {x.shape[1]} and {lq.shape[1]}")
        h, w = lq.shape[-2:]
        if tuple(x.shape[-2:]) != (h * cfg.scale, w * cfg.scale) or x.shape[0] != lq.shape[0]:
            raise ValueError(f"x {tuple(x.shape)} must be lq {tuple(lq.shape)} upscaled x{cfg.scale}")
        if h % cfg.lr_multiple or w % cfg.lr_multiple:
            raise ValueError(
                f"LR size {h}x{w} is not a multiple of {cfg.lr_multiple}; reflect-pad it "
                "(gtasr_core.upscale does this for you)"
            )

    def forward(self, x: Tensor, sigma: float | Tensor, lq: Tensor) -> Tensor:
        self.check_inputs(x, lq)
        cfg = self.config
        dtype = self.model.conv_last.weight.dtype
        s = sigma_tensor(sigma, x.shape[0], x.device)
        body = self.model(x.to(dtype), c_noise(s, cfg.c_noise_offset), lq.to(dtype)).float()
        s = s[:, None, None, None]
        return (
            c_skip(s, cfg.sigma_data, cfg.sigma_scale) * x.float()
            + c_out(s, cfg.sigma_data, cfg.sigma_scale) * body
        )
