"""Full-resolution decoder tail of the F16 VAE: nearest ×s upsample then ``conv_out``, computed in row chunks.

At 4096² the upsampled 128-channel map would be 128×4096×4096 (8 GiB in float32). We never build it: each chunk
of output rows gathers only the half-resolution rows it needs (plus a one-row halo for the 3×3 kernel),
upsamples them and convolves. The convolution of a chunk sees exactly the inputs the full convolution sees for
those rows (zeros outside the image), so the result equals the unchunked computation.

Decode modes (docs/op4ksr.md §9.3): ``aligned`` is ``conv_out(nearest_up(x))`` with zero padding. Diffusion-4K's
``partitioned`` decode equals the aligned one shifted one output pixel down and right, with the vacated first row
and column computed from zero padding: ``partitioned[..., r, c] = conv(zero-extended up(x))[..., r - 1, c - 1]``.
Both are expressed here by a ``shift`` in output pixels (0 or 1).

With ``perf.fused_upsample_conv``, upscale 2 and a 3×3 kernel, each chunk is one stride-2 transposed convolution
of the source rows it needs (:func:`upsample2x_conv_rows`, srkit/upsample_conv.py): 4 multiply-adds per output
pixel and channel pair instead of 9, and no up-sampled rows at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...srkit import perf
from ...srkit.group_norm import is_channels_last
from ...srkit.layout import layout_of
from ...srkit.upsample_conv import transposed_kernel

__all__ = [
    "DECODE_SHIFT",
    "fuses_upsample_conv",
    "kernel_halo",
    "upsample_conv_reference",
    "upsample_conv_rows",
    "upsample_conv_tail",
    "upsample2x_conv_rows",
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


def upsample2x_conv_rows(
    features: torch.Tensor,
    kernel: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    shift: int,
    row_start: int,
    row_stop: int,
) -> torch.Tensor:
    """:func:`upsample_conv_rows` for upscale 2 and a 3×3 conv ``W``, as a transposed convolution of source rows.

    features: [B, C, h, w]; kernel: ``transposed_kernel(W)``, [C, C_out, 4, 4]; returns
    [B, C_out, row_stop - row_start, 2w] (a view of a slightly taller result, in ``features``' layout).

    Maths (per axis; rows and columns combine the same way). Let y = ``conv_transpose2d(x, V, stride=2,
    padding=0)``: y[m] = Σ_{2i + a = m} v[a]·x[i] with v = (w2, w1 + w2, w0 + w1, w0), m = 0 .. 2h + 1. Writing
    u = nearest_up2(x) (zero outside [0, 2h)): y[2i + 1] = (w1 + w2)·x[i] + w0·x[i - 1] = w0·u[2i - 1] +
    w1·u[2i] + w2·u[2i + 1] and y[2i] = w2·x[i] + (w0 + w1)·x[i - 1] = w0·u[2i - 2] + w1·u[2i - 1] + w2·u[2i],
    so y[m] is the zero-padded 3×3 conv centred on u[m - 1].
    The shifted result centres output r on u[r - shift], so out[r] = y[r + 1 - shift]. Output row r therefore
    needs source rows i with 2i + a = r + 1 - shift, a ∈ [0, 3]: ceil((m - 3)/2) <= i <= floor(m/2). Rows
    outside [0, h) are zeros, as in the full transposed convolution, so a slab of source rows is exact.
    Columns: padding 1 - shift crops 1 - shift columns on each side of y's 2w + 2; for shift 1 the last two
    are dropped by slicing.
    """
    if tuple(kernel.shape[-2:]) != (4, 4):
        raise ValueError(f"kernel {tuple(kernel.shape)}: needs transposed_kernel(W), [C_in, C_out, 4, 4]")
    if shift not in (0, 1):
        raise ValueError(f"shift={shift}: must be 0 (aligned) or 1 (partitioned) for a 3x3 kernel")
    height, width = features.shape[-2:]
    if not 0 <= row_start < row_stop <= 2 * height:
        raise ValueError(f"rows [{row_start}, {row_stop}): must lie in [0, {2 * height}) and be non-empty")
    m_lo, m_hi = row_start + 1 - shift, row_stop + 1 - shift  # rows [m_lo, m_hi) of y
    i_lo, i_hi = max(0, (m_lo - 2) // 2), min(height, (m_hi - 1) // 2 + 1)  # (m - 2) // 2 = ceil((m - 3) / 2)
    layout = layout_of(features)
    # A row slice of a batched map is not contiguous in either layout; the copy is slab-sized.
    slab = features[:, :, i_lo:i_hi].contiguous(memory_format=layout)
    y = F.conv_transpose2d(slab, kernel, bias, stride=2, padding=(0, 1 - shift))
    return y[:, :, m_lo - 2 * i_lo : m_hi - 2 * i_lo, : 2 * width]


def fuses_upsample_conv(upscale: int, weight: torch.Tensor) -> bool:
    """Whether the tail runs as :func:`upsample2x_conv_rows`: ``perf.fused_upsample_conv``, ×2 and a 3×3 kernel."""
    return perf.current().fused_upsample_conv and upscale == 2 and tuple(weight.shape[-2:]) == (3, 3)


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
    ``C × (chunk_rows + 2·halo) × (w·upscale + 2·halo)`` instead of the whole up-sampled map; fused
    (:func:`fuses_upsample_conv`), a slab of ``C × (chunk_rows / 2 + 2) × w`` source rows and the chunk's output.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows}: must be >= 1 (output rows computed per chunk)")
    if upscale < 1:
        raise ValueError(f"upscale={upscale}: must be >= 1")
    batch, _, height, width = features.shape
    up_h, up_w = height * upscale, width * upscale
    # Keep a channels_last input's layout (the conv after the VAE's chunked Upsample reads it as NHWC).
    layout = layout_of(features)
    out = torch.empty(
        batch, weight.shape[0], up_h, up_w, dtype=features.dtype, device=features.device, memory_format=layout
    )
    if fuses_upsample_conv(upscale, weight):
        kernel = transposed_kernel(weight).contiguous(memory_format=layout)  # once, not per chunk
        for start in range(0, up_h, chunk_rows):
            stop = min(start + chunk_rows, up_h)
            out[:, :, start:stop] = upsample2x_conv_rows(
                features, kernel, bias, shift=shift, row_start=start, row_stop=stop
            )
        return out
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
