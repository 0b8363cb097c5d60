"""t* calibration: the closed form against a hand computation and its meaning, and ``sr4k calibrate-tstar``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sr4k.cli.main import main
from sr4k.op4ksr_core.tstar import calibrate_tstar, tstar_closed_form
from sr4k.op4ksr_core.vae.loader import load_f16_vae
from tiny_models import f16_vae_file, load


def test_closed_form_by_hand() -> None:
    # Image 1: z_HR = [1, -1, 2, 0], z_LR = [1.5, -1, 1, 0.5]: squared differences 0.25, 0, 1, 0.25; z_HR^2 1, 1, 4, 0.
    # Image 2: z_HR = [0, 0], z_LR = [1, -1]: squared differences 1, 1; z_HR^2 0, 0.
    # Pooled over the 6 values: mean diff^2 = 3.5 / 6, mean z_HR^2 = 6 / 6 = 1 -> t* = sqrt((3.5 / 6) / 2).
    pairs = [
        (torch.tensor([[1.5, -1.0], [1.0, 0.5]]), torch.tensor([[1.0, -1.0], [2.0, 0.0]])),
        (torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])),
    ]
    stats = calibrate_tstar(pairs)
    assert stats.images == 2 and stats.values == 6
    assert stats.lr_mse == pytest.approx(3.5 / 6) and stats.hr_power == pytest.approx(1.0)
    assert stats.t_star == pytest.approx(math.sqrt(3.5 / 12), abs=1e-12)  # 0.5401
    # Pooled, not the mean of per-image values (which would be (sqrt(0.375/2.5) + 1) / 2 = 0.694).
    assert abs(stats.t_star - 0.694) > 0.1


def test_clamping_and_bad_input() -> None:
    assert tstar_closed_form(0.0, 1.0) == (0.05, 0.0)
    assert tstar_closed_form(100.0, 0.0) == (0.95, 10.0)
    with pytest.raises(ValueError, match="no image pairs"):
        calibrate_tstar([])
    with pytest.raises(ValueError, match="differ in shape"):
        calibrate_tstar([(torch.zeros(2), torch.zeros(3))])


def test_t_star_is_where_the_flow_point_is_as_far_as_the_lr_latent() -> None:
    """Monte Carlo: at sigma = t*, mean((1 - sigma) z_HR + sigma eps - z_HR)^2 equals mean(z_LR - z_HR)^2."""
    g = torch.Generator().manual_seed(0)
    z_hr = 0.8 * torch.randn(1, 16, 64, 64, generator=g) + 0.3
    z_lr = z_hr + 0.4 * torch.randn(z_hr.shape, generator=g)
    stats = calibrate_tstar([(z_lr, z_hr)])
    eps = torch.randn(z_hr.shape, generator=g)
    flow = (1 - stats.t_star) * z_hr + stats.t_star * eps
    assert ((flow - z_hr) ** 2).mean().item() == pytest.approx(stats.lr_mse, rel=0.02)
    assert 0.05 < stats.t_star < 0.95


def test_cli_writes_the_calibration_of_the_vae_latents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):  # 72 x 56: cropped to 64 x 48 (multiples of the 16-px latent cell)
        smooth = Image.fromarray((rng.random((7, 9, 3)) * 255).astype(np.uint8)).resize(
            (72, 56), Image.BICUBIC
        )
        smooth.save(hr_dir / f"im{i}.png")
    vae_file = f16_vae_file("bfl")
    out = tmp_path / "tstar.json"
    assert (
        main(
            [
                "calibrate-tstar",
                "--vae",
                str(vae_file),
                "--hr",
                str(hr_dir),
                "--device",
                "cpu",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert (
        result["images"] == 2 and result["decode_mode"] == "aligned" and result["scale"] == 4
    )  # BFL keys: aligned
    # The same maths by hand: F16 posterior means of HR and of bicubic-up(antialiased bicubic-down(HR)).
    vae = load_f16_vae(load(vae_file), "aligned", dtype=torch.float32)
    sq = pw = n = 0.0
    for i in range(2):
        hr = (
            torch.from_numpy(np.array(Image.open(hr_dir / f"im{i}.png"))).permute(2, 0, 1)[None].float() / 255
        )
        lr = F.interpolate(hr, size=(14, 18), mode="bicubic", antialias=True, align_corners=False)
        up = F.interpolate(lr, size=(56, 72), mode="bicubic", align_corners=False)
        with torch.no_grad():
            z_hr, z_lr = (
                vae.to_model_latent(vae.encode(x[..., :48, :64] * 2 - 1)).double() for x in (hr, up)
            )
        sq, pw, n = sq + ((z_lr - z_hr) ** 2).sum().item(), pw + (z_hr**2).sum().item(), n + z_hr.numel()
    assert result["values"] == n == 2 * 16 * 3 * 4
    assert result["t_star_unclamped"] == pytest.approx(math.sqrt((sq / n) / (1 + pw / n)), rel=1e-5)


def test_cli_errors_are_clear(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR", logger="sr4k"):
        assert (
            main(["calibrate-tstar", "--vae", str(f16_vae_file("bfl")), "--hr", str(tmp_path / "none")]) == 1
        )
    assert "does not exist" in caplog.text
