"""Small image helpers every part shares, each defined once: the image-batch validator, luma weights, the luma
map, the progress callback type.

Image *files* are in :mod:`srkit.image_io`; token geometry is :mod:`op4ksr_core.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["LUMA_WEIGHTS", "ImageError", "Progress", "check_image", "luma"]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B (torchvision ``rgb_to_grayscale``; ``metrics.Y_WEIGHTS`` is the
studio-swing YCbCr version of the same row, scaled to [16, 235])."""

Progress = Callable[[int, "int | None"], None]
"""``progress(done, total)`` after each unit of work (images, tiles, bytes); ``total`` is None when unknown.
An exception it raises cancels the work (ComfyUI's progress bar raises on cancel)."""


def luma(images: Tensor) -> Tensor:
    """BT.601 luma of RGB images ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (in the input's dtype and device)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"luma needs RGB images [B, 3, H, W], got {tuple(images.shape)}")
    w = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


class ImageError(ValueError, TypeError):
    """A tensor that is not the image batch a function needs; the message names the problem and the fix.

    A ``ValueError``, and also a ``TypeError`` because the validators it replaced raised ``TypeError`` for a
    non-tensor or an integer dtype (the way ``numpy.AxisError`` is both a ``ValueError`` and an ``IndexError``).
    """


def check_image(
    x: object,
    *,
    name: str = "image",
    channels: int | tuple[int, ...] = (3, 4),
    value_range: tuple[float, float] = (0.0, 1.0),
    check_values: bool = False,
    multiple: int = 1,
    multiple_reason: str = "",
    purpose: str = "",
) -> Tensor:
    """Raise :class:`ImageError` unless ``x`` is a non-empty float image batch ``[B, C, H, W]``; return ``x``.

    Args:
        x: the batch to check.
        name: how the message calls it (the argument or node input name).
        channels: the allowed channel count(s) in dim 1.
        value_range: the range the values must be in, named in the messages (and checked with ``check_values``).
        check_values: also check ``value_range`` (a min/max over the batch, a device sync: off by default).
        multiple: H and W must be multiples of this (e.g. a VAE's downscale).
        multiple_reason: why, in the message (e.g. "the VAE downscale").
        purpose: who needs the channels, in the message (e.g. "GTASR").
    """
    allowed = (channels,) if isinstance(channels, int) else tuple(channels)
    c = str(allowed[0]) if len(allowed) == 1 else "C"
    lo, hi = value_range
    rng = f"[{lo:g}, {hi:g}]"
    if not isinstance(x, Tensor):
        raise ImageError(f"{name} must be a torch.Tensor [B, {c}, H, W] in {rng}, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.ndim != 4:
        fix = (
            "add the batch dimension with x[None] (and x.movedim(-1, 0) first if it is HWC)"
            if x.ndim == 3
            else "fold the extra dimension into the batch with x.flatten(0, 1)"
            if x.ndim == 5
            else "reshape it to one batch of images"
        )
        raise ImageError(f"{name} must be 4-D [B, {c}, H, W], got shape {shape}; {fix}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        what = "an empty batch (0 images)" if x.shape[0] == 0 else "no pixels"
        raise ImageError(
            f"{name} is empty (shape {shape}: {what}); pass at least one non-empty image "
            "(in ComfyUI, connect a node that produces one)"
        )
    if x.shape[1] not in allowed:
        raise ImageError(_channels_message(name, shape, allowed, value_range, purpose))
    if not x.is_floating_point():
        fix = _affine("x.float() /", 255 / (hi - lo), lo)  # [0, 1]: x.float() / 255; [-1, 1]: / 127.5 - 1
        raise ImageError(f"{name} must be a float tensor in {rng}, got {x.dtype}; for 8-bit images use {fix}")
    if check_values:
        got_lo, got_hi = float(x.min()), float(x.max())
        if not (got_lo >= lo - 1e-3 and got_hi <= hi + 1e-3):
            fix = (
                "map [-1, 1] data with (x + 1) / 2 and 8-bit data with x / 255"
                if (lo, hi) == (0.0, 1.0)
                else "map [0, 1] data with " + _affine("x *", hi - lo, lo)
            )
            raise ImageError(f"{name} values must lie in {rng}, got [{got_lo:.3g}, {got_hi:.3g}]; {fix}")
    h, w = x.shape[2], x.shape[3]
    if multiple > 1 and (h % multiple or w % multiple):
        why = f" ({multiple_reason})" if multiple_reason else ""
        fh, fw = h // multiple * multiple, w // multiple * multiple
        fix = (
            f"pad or crop to {fh}x{fw}"
            if fh and fw
            else f"pad to {-(-h // multiple) * multiple}x{-(-w // multiple) * multiple}"
        )
        raise ImageError(f"{name} size {h}x{w} is not a multiple of {multiple}{why}; {fix}")
    return x


def _affine(head: str, factor: float, shift: float) -> str:
    """``"x * 2 - 1"`` from ("x *", 2, -1): the fix's formula without a ``+ -1``."""
    return f"{head} {factor:g}" + (f" {'-' if shift < 0 else '+'} {abs(shift):g}" if shift else "")


def _channels_message(
    name: str,
    shape: tuple[int, ...],
    allowed: tuple[int, ...],
    value_range: tuple[float, float],
    purpose: str,
) -> str:
    n = shape[1]
    want = {(3,): "3 channels (RGB)", (3, 4): "RGB or RGBA (3 or 4 channels)"}.get(
        allowed, " or ".join(map(str, allowed)) + " channels"
    )
    if shape[-1] in allowed:  # the channels are last: a ComfyUI IMAGE passed without the move
        fix = "ComfyUI IMAGE is B×H×W×C: use x.movedim(-1, 1)"
        if value_range == (-1.0, 1.0):
            fix += " * 2 - 1"
    elif n == 1 and 3 in allowed:
        fix = (
            "convert a grayscale or mask image to RGB first with x.expand(-1, 3, -1, -1) "
            "(in ComfyUI e.g. MaskToImage, which makes 3 channels)"
        )
    elif n == 4 and 3 in allowed:
        fix = "drop the alpha channel with x[:, :3]"
    else:
        fix = "if the tensor is BHWC, use x.movedim(-1, 1)"
    who = f" for {purpose}" if purpose else ""
    return f"{name} must have {want}{who}, got {n} channel(s) in dim 1 (shape {shape}); {fix}"
