"""PSNR/SSIM on Y against scikit-image, and the tile-seam detector (srkit.metrics, srkit.seam)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr4k.srkit.metrics import psnr, psnr_y, rgb_to_y, ssim, ssim_y
from sr4k.srkit.seam import seam_heatmap, seam_score, seam_search
from synthetic_images import natural_image


def pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    hr = natural_image(70, 90, seed=seed, batch=2)
    g = torch.Generator().manual_seed(seed + 100)
    sr = (hr + 0.04 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return sr, hr


def _y_numpy(t: torch.Tensor, crop: int) -> np.ndarray:
    a = t.double().permute(1, 2, 0).numpy()
    y = 16.0 + a @ np.array([65.481, 128.553, 24.966])
    return y[crop:-crop, crop:-crop] if crop else y


# --------------------------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_ssim_y_match_scikit_image(crop: int):
    sr, hr = pair()
    p, s = psnr(sr, hr, crop_border=crop), ssim(sr, hr, crop_border=crop)
    assert p.dtype == torch.float64 and p.shape == (2,)
    for i in range(2):
        ref_p = peak_signal_noise_ratio(_y_numpy(hr[i], crop), _y_numpy(sr[i], crop), data_range=255)
        ref_s = structural_similarity(
            _y_numpy(hr[i], crop),
            _y_numpy(sr[i], crop),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        assert abs(float(p[i]) - ref_p) < 1e-9
        assert abs(float(s[i]) - ref_s) < 1e-9
        assert 0.3 < ref_s < 0.99  # a non-trivial pair
    torch.testing.assert_close(psnr_y(sr, hr, crop), p)
    torch.testing.assert_close(ssim_y(sr, hr, crop), s)


def test_rgb_mode_matches_scikit_image_channel_average():
    sr, hr = pair(seed=1)
    s = ssim(sr, hr, y_channel=False)
    p = psnr(sr, hr, y_channel=False)
    a, b = (t[0].double().permute(1, 2, 0).numpy() * 255 for t in (hr, sr))
    ref_s = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
    )
    assert abs(float(s[0]) - ref_s) < 1e-9
    assert abs(float(p[0]) - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-9


def test_y_conversion_identity_and_quantisation():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert float(rgb_to_y(white)[0, 0, 0, 0]) == pytest.approx(235.0)
    assert float(rgb_to_y(black)[0, 0, 0, 0]) == pytest.approx(16.0)
    sr, hr = pair()
    assert math.isinf(float(psnr(hr, hr)[0])) and float(ssim(hr, hr)[0]) == pytest.approx(1.0)
    q = lambda t: torch.round(t.double() * 255) / 255  # noqa: E731
    torch.testing.assert_close(psnr(sr, hr, quantize=True), psnr(q(sr), q(hr)))
    with pytest.raises(ValueError, match="same shape"):
        psnr(sr, hr[..., :-1])
    with pytest.raises(ValueError, match="crop_border"):
        ssim(sr, hr, crop_border=40)


# ------------------------------------------------------------------------------------------------ seams
def tile_offsets(
    h: int, w: int, tile: int, amp: float, seed: int, feather: bool, start=(0, 0)
) -> torch.Tensor:
    """Per-tile brightness offsets: hard steps (naive stitching) or linear ramps (feathered blending)."""
    g = torch.Generator().manual_seed(seed)
    o = (torch.rand(1, 3, h // tile + 2, w // tile + 2, generator=g) * 2 - 1) * amp
    if feather:
        return F.interpolate(o, scale_factor=tile, mode="bilinear", align_corners=False)[..., :h, :w]
    up = o.repeat_interleave(tile, 2).repeat_interleave(tile, 3)
    return up[..., start[0] : start[0] + h, start[1] : start[1] + w]


def test_seam_score_separates_tiled_natural_and_feathered():
    for seed in range(3):
        x = natural_image(256, 384, seed=seed)
        tiled = (x + tile_offsets(256, 384, 64, 0.03, seed, False, start=(10, 20))).clamp(0, 1)
        feathered = (x + tile_offsets(256, 384, 64, 0.03, seed, True)).clamp(0, 1)
        s_nat, s_tiled, s_feather = (float(seam_score(t)[0]) for t in (x, tiled, feathered))
        assert 0.85 < s_nat < 1.15
        assert s_tiled > 1.6
        assert s_feather < 1.15
        res = seam_search(tiled)
        # Tiles start 10 rows / 20 columns before the image: seams at rows 54 + 64k, columns 44 + 64k.
        assert (int(res.stride[0]), int(res.offset_x[0]), int(res.offset_y[0])) == (64, 44, 54)
        assert float(seam_score(tiled, tile=64)[0]) > 1.6


def test_seam_score_batched_and_heatmap():
    x = natural_image(192, 192, seed=5, batch=2)
    tiled = (x + tile_offsets(192, 192, 48, 0.04, 5, False)).clamp(0, 1)
    both = torch.cat([x[:1], tiled[1:]])
    s = seam_score(both)
    assert s.shape == (2,) and float(s[0]) < 1.15 < 1.6 < float(s[1])
    hm = seam_heatmap(tiled[1])
    assert hm.shape == (192, 192)
    seam_cols = hm[:, [47, 95, 143]].mean()  # boundary between columns 47|48, ...
    assert float(seam_cols) > 1.8 * float(hm[:, 60:80].mean())
    assert 0.9 < float(seam_heatmap(x[0]).mean()) < 1.3
    with pytest.raises(ValueError, match="odd"):
        seam_heatmap(x[0], line_px=32)
