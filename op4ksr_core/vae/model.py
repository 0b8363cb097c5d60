"""The F16 VAE: FLUX.1 autoencoder with a stride-2 encoder input and a final nearest ×2 in the decoder.

Our implementation of Diffusion-4K's ``AutoencoderKL(stride=2)`` (docs/op4ksr.md §9.2–9.3). Shapes for the
FLUX preset: image [B, 3, H, W] in [-1, 1] -> moments [B, 32, H/16, W/16] -> latent [B, 16, H/16, W/16];
the decoder runs its levels up to H/2 × W/2 (128 channels) and the full-resolution tail (nearest ×2, 3×3
``conv_out``) in row chunks (``vae_tail``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...srkit import perf
from ...srkit.images import check_image
from ...srkit.layout import in_layout_of, relayout_
from .config import FLUX_F16, DecodeMode, VaeConfig, check_decode_mode
from .latent_format import LatentFormat, latent_format_for
from .layers import DownBlock, MidBlock, UpBlock, group_norm, norm_silu, run_layers
from .tail import DECODE_SHIFT, upsample_conv_tail

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Decoder",
    "Encoder",
    "F16VAE",
    "LOGVAR_RANGE",
    "check_chunk_rows",
]


# Output rows per chunk of the full-resolution tail. At 4096 px wide and 128 channels a 256-row chunk
# (plus its 2-row halo) is 128 × 258 × 4098 values: 0.54 GB in float32, against 8.6 GB unchunked.
DEFAULT_CHUNK_ROWS = 256

# Log-variance clamp of the diagonal Gaussian posterior (as diffusers' DiagonalGaussianDistribution), so that
# exp(0.5 * logvar) stays finite in half precision.
LOGVAR_RANGE = (-30.0, 20.0)


class Encoder(nn.Module):
    """Image [B, C_in, H, W] -> posterior moments [B, 2·latent, H/downscale, W/downscale]."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        chans, groups, eps = config.block_out_channels, config.norm_num_groups, config.norm_eps
        # The F16 change: stride 2 here halves the resolution once more than FLUX (same weight shape).
        self.conv_in = nn.Conv2d(config.in_channels, chans[0], 3, stride=config.input_stride, padding=1)
        self.down_blocks = nn.ModuleList(
            [
                DownBlock(
                    chans[max(i - 1, 0)],
                    chans[i],
                    config.layers_per_block,
                    i < config.num_levels - 1,
                    groups,
                    eps,
                )
                for i in range(config.num_levels)
            ]
        )
        self.mid_block = MidBlock(chans[-1], groups, eps)
        self.conv_norm_out = group_norm(chans[-1], groups, eps)
        self.conv_out = nn.Conv2d(chans[-1], config.moment_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = [layer for block in self.down_blocks for layer in block.layers()]
        h = self.mid_block(run_layers(layers, self.conv_in(x)))
        return self.conv_out(norm_silu(self.conv_norm_out, h))


class Decoder(nn.Module):
    """Latent [B, latent, h, w] -> image [B, C_out, h·downscale, w·downscale]."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        chans, groups, eps = config.block_out_channels[::-1], config.norm_num_groups, config.norm_eps
        self.conv_in = nn.Conv2d(config.latent_channels, chans[0], 3, padding=1)
        self.mid_block = MidBlock(chans[0], groups, eps)
        # Decoder levels carry one more resnet than encoder levels (as in FLUX / LDM).
        self.up_blocks = nn.ModuleList(
            [
                UpBlock(
                    chans[max(i - 1, 0)],
                    chans[i],
                    config.layers_per_block + 1,
                    i < config.num_levels - 1,
                    groups,
                    eps,
                )
                for i in range(config.num_levels)
            ]
        )
        self.conv_norm_out = group_norm(chans[-1], groups, eps)
        self.conv_out = nn.Conv2d(chans[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, shift: int, chunk_rows: int) -> torch.Tensor:
        layers = [layer for block in self.up_blocks for layer in block.layers()]
        h = run_layers(layers, self.mid_block(self.conv_in(z)))
        # Norm and SiLU before the final nearest upsample: nearest ×s repeats each value s² times, leaving the
        # GroupNorm statistics unchanged, and SiLU is pointwise, so this equals Diffusion-4K's order
        # (norm -> up -> SiLU for its aligned path) at a quarter of the memory.
        h = norm_silu(self.conv_norm_out, h)
        return upsample_conv_tail(
            h,
            self.conv_out.weight,
            self.conv_out.bias,
            upscale=self.config.tail_upscale,
            shift=shift,
            chunk_rows=chunk_rows,
        )


def set_vae_layout(vae: nn.Module, channels_last: bool) -> nn.Module:
    """Put the VAE's conv weights in channels_last (NHWC, cuDNN's native bf16 layout) or back (in place).

    Cheap when already in that layout. Activations follow the weights' layout through every conv.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in vae.modules():
        if isinstance(module, nn.Conv2d):
            relayout_(module.weight, fmt)
    return vae


def _inference_layout(part: nn.Module) -> None:
    """In inference (autograd off, ``part`` in eval mode) put ``part``'s conv weights in the layout of
    ``perf.vae_channels_last``, so every caller runs the measured layout: the headless pipeline, ComfyUI's VAE
    nodes and OP4KSR Upscale alike. Training keeps whatever layout the trainer gave the weights (an optimiser's
    state and DDP's gradient buckets are laid out like them)."""
    if not torch.is_grad_enabled() and not part.training:
        set_vae_layout(part, perf.current().vae_channels_last)


def check_chunk_rows(chunk_rows: int) -> int:
    """Validate the tail's rows per chunk."""
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(
            f"chunk_rows={chunk_rows!r}: must be an int >= 1 (output rows per decoder-tail chunk)"
        )
    return chunk_rows


class F16VAE(nn.Module):
    """FLUX.1 autoencoder with F16 geometry. ``encode``/``decode`` work on raw VAE latents (no shift/scale).

    Attributes: ``config`` (VaeConfig), ``latent_format`` (LatentFormat), ``decode_mode``
    ('partitioned' | 'aligned'), ``chunk_rows`` (tail rows per chunk), ``encoder``, ``decoder``.
    """

    def __init__(
        self,
        config: VaeConfig = FLUX_F16,
        decode_mode: str = "partitioned",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        super().__init__()
        self.config = config
        self.latent_format: LatentFormat = latent_format_for(config)
        self.decode_mode: DecodeMode = check_decode_mode(decode_mode, config)
        self.chunk_rows = check_chunk_rows(chunk_rows)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_out.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.decoder.conv_out.weight.device

    @property
    def downscale(self) -> int:
        return self.config.downscale

    def _check_image(self, image: torch.Tensor) -> None:
        """Raise ``srkit.images.ImageError`` unless ``image`` is a float [B, in_channels, H, W] batch whose sides
        are multiples of the downscale."""
        check_image(
            image,
            channels=self.config.in_channels,
            value_range=(-1.0, 1.0),
            multiple=self.downscale,
            multiple_reason="the VAE downscale",
        )

    def _check_latent(self, latent: torch.Tensor) -> None:
        channels = self.config.latent_channels
        if not isinstance(latent, torch.Tensor) or latent.ndim != 4 or latent.shape[1] != channels:
            got = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
            raise ValueError(
                f"latent must be B×{channels}×h×w (raw VAE latent, {channels} channels), got {got}; "
                "a 4-channel latent comes from an SD1/SDXL VAE, a 64-channel one is FLUX-packed (unpack first)"
            )
        if not latent.is_floating_point():
            raise TypeError(f"latent dtype {latent.dtype}: must be floating point")

    def encode_moments(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, logvar), each [B, latent, H/downscale, W/downscale], of images [B, 3, H, W] in [-1, 1]."""
        self._check_image(image)
        _inference_layout(self.encoder)
        w = self.encoder.conv_in.weight  # its own dtype: a decoder fine-tune holds the decoder in float32
        image = in_layout_of(image.to(w.dtype), w)  # srkit/layout.py
        moments = self.encoder(image)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(
        self, image: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Raw VAE latent of ``image``: the posterior mean, or ``mean + exp(logvar / 2) · ε`` if ``sample``."""
        mean, logvar = self.encode_moments(image)
        if not sample:
            return mean
        noise_device = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=noise_device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise.to(mean.device)

    def decode(
        self, latent: torch.Tensor, *, decode_mode: str | None = None, chunk_rows: int | None = None
    ) -> torch.Tensor:
        """Image [B, 3, h·downscale, w·downscale] (about [-1, 1]) from a raw latent [B, latent, h, w]."""
        self._check_latent(latent)
        mode = check_decode_mode(decode_mode or self.decode_mode, self.config)
        rows = check_chunk_rows(self.chunk_rows if chunk_rows is None else chunk_rows)
        _inference_layout(self.decoder)
        w = self.decoder.conv_in.weight
        latent = in_layout_of(latent.to(w.dtype), w)  # srkit/layout.py
        return self.decoder(latent, DECODE_SHIFT[mode], rows)

    def forward(
        self, image: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Reconstruction ``decode(encode(image))`` (e.g. for decoder fine-tuning)."""
        return self.decode(self.encode(image, sample=sample, generator=generator))

    def to_model_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - shift) * scale``: VAE latent -> diffusion-model latent."""
        return self.latent_format.to_model(z)

    def from_model_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``z / scale + shift``: diffusion-model latent -> VAE latent."""
        return self.latent_format.from_model(z)
