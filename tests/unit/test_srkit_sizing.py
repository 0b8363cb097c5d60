"""Pad-to-a-multiple geometry, defined once (srkit.sizing), and the two fills built on it."""

from __future__ import annotations

import pytest
import torch

from sr4k.gtasr_core.tiling import reflect_pad_to_multiple
from sr4k.op4ksr_core.onestep import pad_for_crop
from sr4k.srkit.sizing import padded_size, padding_to_multiple


@pytest.mark.parametrize(
    ("h", "w", "m", "pad"),
    [
        (5, 7, 4, (3, 1)),
        (8, 8, 8, (0, 0)),
        (1, 33, 32, (31, 31)),
        (100, 130, 16, (12, 14)),
        (3, 3, 1, (0, 0)),
    ],
)
def test_padding_is_the_distance_to_the_next_multiple(h: int, w: int, m: int, pad: tuple[int, int]) -> None:
    assert padding_to_multiple(h, w, m) == pad
    assert padded_size(h, w, m) == (h + pad[0], w + pad[1])


@pytest.mark.parametrize("m", [0, -8, 2.0, True])
def test_a_multiple_that_is_not_a_positive_int_is_refused(m: object) -> None:
    with pytest.raises(ValueError, match="multiple must be a positive int"):
        padding_to_multiple(4, 4, m)  # type: ignore[arg-type]


@pytest.mark.parametrize(("h", "w", "m"), [(5, 7, 4), (9, 3, 8), (2, 2, 32), (1, 6, 8)])
def test_both_fills_reach_the_same_size_and_agree_while_one_reflection_suffices(
    h: int, w: int, m: int
) -> None:
    x = torch.rand(1, 3, h, w)
    gtasr = reflect_pad_to_multiple(x, m)
    op4ksr, hw = pad_for_crop(x, m)
    assert gtasr.shape[-2:] == op4ksr.shape[-2:] == padded_size(h, w, m) and hw == (h, w)
    torch.testing.assert_close(gtasr[..., :h, :w], x, rtol=0, atol=0)
    ph, pw = padding_to_multiple(h, w, m)
    if ph < h and pw < w:  # one reflection: the same pixels
        torch.testing.assert_close(gtasr, op4ksr, rtol=0, atol=0)
    else:  # GTASR keeps reflecting (as released), OP4KSR replicates the border
        assert not torch.equal(gtasr, op4ksr)
