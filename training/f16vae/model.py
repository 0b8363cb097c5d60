"""The F16 decoder fine-tune as one module: frozen encoder, frozen decoder body, trainable part, loss.

Forward: image [B, 3, H, W] in [-1, 1] -> posterior (mean or sample) [B, 16, H/16, W/16] -> decoder ->
reconstruction [B, 3, H, W]. Everything before the trainable part runs without autograd (no activations
kept), so training the tail costs little more than one decode.
"""

from __future__ import annotations

import torch
from torch import nn

from ...op4ksr_core.vae import F16VAE
from ...op4ksr_core.vae.layers import norm_silu, run_layers
from ...op4ksr_core.vae.tail import DECODE_SHIFT, upsample_conv_tail

__all__ = ["DecoderFinetune", "trainable_modules"]


def trainable_modules(vae: F16VAE, scope: str) -> list[nn.Module]:
    """Decoder modules that get gradients for ``scope`` (config.TRAIN_SCOPES)."""
    dec = vae.decoder
    tail = [dec.conv_norm_out, dec.conv_out]
    if scope == "tail":
        return tail
    if scope == "last_block":
        return [dec.up_blocks[-1], *tail]
    if scope == "decoder":
        return [dec]
    raise ValueError(f"train_scope={scope!r}: choose tail, last_block or decoder")


class DecoderFinetune(nn.Module):
    """``image -> reconstruction`` with only the ``scope`` part of the decoder trainable.

    The trainable part is held in float32 whatever the VAE's dtype: AdamW updates a bfloat16 weight in
    place, and at a fine-tune's learning rate (1e-5) most updates are below half a bfloat16 ulp and round
    away. The frozen part keeps the VAE's dtype; its output is cast up at the boundary.
    """

    def __init__(self, vae: F16VAE, scope: str, decode_mode: str, sample_posterior: bool) -> None:
        super().__init__()
        self.vae = vae
        self.scope = scope
        self.shift = DECODE_SHIFT[decode_mode]
        self.sample_posterior = sample_posterior
        vae.requires_grad_(False)
        for module in trainable_modules(vae, scope):
            module.requires_grad_(True).float()

    def _frozen_features(self, image: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Decoder activations entering the trainable part (no autograd)."""
        vae, dec = self.vae, self.vae.decoder
        with torch.no_grad():
            mean, logvar = vae.encode_moments(image)  # cast to the encoder's own dtype there
            z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise.to(mean)
            if self.scope == "decoder":
                return z
            layers = [layer for block in dec.up_blocks for layer in block.layers()]
            if self.scope == "last_block":
                layers = layers[: -len(dec.up_blocks[-1].layers())]
            return run_layers(layers, dec.mid_block(dec.conv_in(z)))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``image`` [B, 3, H, W] in [-1, 1]; ``noise`` the posterior's standard normal draw (None: the mean)."""
        dec = self.vae.decoder
        h = self._frozen_features(image, noise if self.sample_posterior else None).float()
        if self.scope == "decoder":
            h = dec.mid_block(dec.conv_in(h))
            h = run_layers([layer for block in dec.up_blocks for layer in block.layers()], h)
        elif self.scope == "last_block":
            h = dec.up_blocks[-1](h)
        h = norm_silu(dec.conv_norm_out, h)
        return upsample_conv_tail(
            h,
            dec.conv_out.weight,
            dec.conv_out.bias,
            upscale=dec.config.tail_upscale,
            shift=self.shift,
            chunk_rows=self.vae.chunk_rows,
        )
