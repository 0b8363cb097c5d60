"""Full-resolution decoder tail of the F16 VAE: nearest ×s upsample then ``conv_out``, computed in row chunks.

At 4096² the upsampled 128-channel map would be 128×4096×4096 (8 GiB in float32). We never build it: each chunk
of output rows gathers only the half-resolution rows it needs (plus a one-row halo for the 3×3 kernel),
upsamples them and convolves. The convolution of a chunk sees exactly the inputs the full convolution sees for
those rows (zeros outside the image), so the result equals the unchunked computation.

Decode modes (docs/op4ksr.md §9.3): ``aligned`` is ``conv_out(nearest_up(x))`` with zero padding. Diffusion-4K's
``partitioned`` decode equals the aligned one shifted one output pixel down and right, with the vacated first row
and column computed from zero padding: ``partitioned[..., r, c] = conv(zero-extended up(x))[..., r - 1, c - 1]``.
Both are expressed here by a ``shift`` in output pixels (0 or 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...srkit.group_norm import is_channels_last

__all__ = [
    "DECODE_SHIFT",
    "kernel_halo",
    "upsample_conv_reference",
    "upsample_conv_rows",
    "upsample_conv_tail",
]


# Output pixel shift of each decode mode (see module docstring).
DECODE_SHIFT: dict[str, int] = {"aligned": 0, "partitioned": 1}


def kernel_halo(weight: torch.Tensor) -> int:
    """Half-width of a square, odd ``conv_out`` kernel (1 for 3×3): rows a chunk needs above and below."""
    kh, kw = weight.shape[-2:]
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"conv_out kernel {kh}x{kw}: the tail needs a square kernel of odd size")
    return kh // 2


def upsample_conv_rows(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    upscale: int,
    shift: int,
    row_start: int,
    row_stop: int,
) -> torch.Tensor:
    """Output rows ``[row_start, row_stop)`` of ``conv(nearest_up(features, upscale))``, shifted by ``shift``.

    features: [B, C, h, w] (already normalised and activated); weight: [C_out, C, k, k]; returns
    [B, C_out, row_stop - row_start, w * upscale]. Output pixel (r, c) is the zero-padded convolution centred on
    up-sampled pixel (r - shift, c - shift); pixels outside the up-sampled map are zero.
    """
    halo = kernel_halo(weight)
    if not 0 <= shift <= halo:
        raise ValueError(f"shift={shift}: must lie in [0, {halo}] for a {2 * halo + 1}-wide kernel")
    batch, channels, height, width = features.shape
    up_h, up_w = height * upscale, width * upscale
    # Up-sampled rows [lo, hi) feed the requested outputs: the centres row - shift plus `halo` rows either side;
    # only [in_lo, in_hi) of them lie inside the map, the rest stay zero (the full convolution's zero padding).
    lo, hi = row_start - shift - halo, row_stop - shift + halo
    in_lo, in_hi = max(lo, 0), min(hi, up_h)
    # Columns: `halo + shift` zeros on the left, `halo - shift` on the right, so valid conv output c is
    # centred on up-sampled column c - shift.
    nhwc = is_channels_last(features)  # then every map here stays NHWC, for the conv that reads it
    buf = torch.empty(
        (batch, channels, hi - lo, up_w + 2 * halo),
        dtype=features.dtype,
        device=features.device,
        memory_format=torch.channels_last if nhwc else torch.contiguous_format,
    ).zero_()
    if in_hi > in_lo:
        src_rows = torch.arange(in_lo, in_hi, device=features.device) // upscale  # nearest: row i <- i // s
        if nhwc:  # index_select returns NCHW; on the NHWC view it gathers whole rows and stays NHWC
            src = features.permute(0, 2, 3, 1).index_select(1, src_rows).permute(0, 3, 1, 2)
        else:
            src = features.index_select(2, src_rows)  # [B, C, in_hi - in_lo, w]
        # Nearest along columns without a full-width temporary: write each source column into its s copies.
        dst = buf[:, :, in_lo - lo : in_hi - lo, halo + shift : halo + shift + up_w]
        dst.unflatten(-1, (width, upscale)).copy_(src.unsqueeze(-1).expand(-1, -1, -1, -1, upscale))
    return F.conv2d(buf, weight, bias)


def upsample_conv_tail(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    upscale: int,
    shift: int,
    chunk_rows: int,
) -> torch.Tensor:
    """``conv(nearest_up(features))`` (shifted by ``shift``) for the whole image, ``chunk_rows`` output rows at a time.

    features [B, C, h, w] -> [B, C_out, h*upscale, w*upscale]. Peak extra memory is one chunk of
    ``C × (chunk_rows + 2·halo) × (w·upscale + 2·halo)`` instead of the whole up-sampled map.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows}: must be >= 1 (output rows computed per chunk)")
    if upscale < 1:
        raise ValueError(f"upscale={upscale}: must be >= 1")
    batch, _, height, width = features.shape
    up_h, up_w = height * upscale, width * upscale
    # Keep a channels_last input's layout (the conv after the VAE's chunked Upsample reads it as NHWC).
    layout = torch.channels_last if is_channels_last(features) else torch.contiguous_format
    out = torch.empty(
        batch, weight.shape[0], up_h, up_w, dtype=features.dtype, device=features.device, memory_format=layout
    )
    for start in range(0, up_h, chunk_rows):
        stop = min(start + chunk_rows, up_h)
        out[:, :, start:stop] = upsample_conv_rows(
            features, weight, bias, upscale=upscale, shift=shift, row_start=start, row_stop=stop
        )
    return out


def upsample_conv_reference(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    upscale: int,
    shift: int,
) -> torch.Tensor:
    """Unchunked definition of :func:`upsample_conv_tail` (whole up-sampled map in memory); for tests and small images."""
    halo = kernel_halo(weight)
    up = F.interpolate(features, scale_factor=upscale, mode="nearest") if upscale > 1 else features
    # Pad (left, right, top, bottom): the shift moves the window towards the top-left.
    up = F.pad(up, (halo + shift, halo - shift, halo + shift, halo - shift))
    return F.conv2d(up, weight, bias)
