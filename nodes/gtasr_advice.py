"""What ``GTASR_Upscale`` tells the user when it runs out of memory: what was tried, and what to change."""

from __future__ import annotations

__all__ = ["oom_advice", "oom_message"]


def oom_advice(tiling: str, tile_size: int, multiple: int) -> str:
    """What to change after running out of memory in ``tiling`` mode (tiles are multiples of ``multiple``)."""
    if tiling == "off":
        return (
            "Set tiling to auto (falls back to tiles when the whole image does not fit) or force with a "
            "smaller tile_size, pick precision bf16/fp16, or free memory (unload other models)."
        )
    if tiling == "auto":  # auto has already halved its tiles down to the multiple
        return (
            "Pick precision bf16/fp16, or free memory (unload other models, or start ComfyUI with --lowvram)."
        )
    smaller = tile_size // 2 // multiple * multiple
    tile = (
        f"Lower tile_size (now {tile_size}; try {smaller})" if smaller >= multiple else "tile_size is minimal"
    )
    return f"{tile}, pick precision bf16/fp16, or free memory (unload other models)."


def oom_message(
    tiling: str, tile_size: int, multiple: int, scale: int, lr_hw: tuple[int, int], patch_free: bool
) -> str:
    """The out-of-memory error text: the failing pass (``lr_hw`` LR px, x``scale``), how it was run, the advice.

    ``patch_free``: whether auto had started with the whole image (it then fell back to tiles down to the
    network's ``multiple``) or went straight to tiles.
    """
    ph, pw = lr_hw
    mode = (
        f"in {tile_size} px tiles"
        if tiling == "force"
        else "in one pass"
        if tiling == "off"
        else f"in one pass and in tiles down to {multiple} px"
        if patch_free
        else f"in tiles from {tile_size} down to {multiple} px"
    )
    return (
        f"GTASR ran out of memory upscaling {pw}x{ph} to {pw * scale}x{ph * scale} "
        f"{mode} (tiling={tiling}). {oom_advice(tiling, tile_size, multiple)}"
    )
