"""``SR4K_InspectArtifacts`` in the real ComfyUI server (and its score text in the real frontend)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from artifact_images import SIZE, TILE
from artifact_images import natural as _natural
from artifact_images import periodic as _periodic
from artifact_images import tiled as _tiled
from comfy_harness import ComfyServer, PromptError, execution_error
from sr4k.srkit.periodicity import periodicity_score
from sr4k.srkit.seam import seam_score
from workflow_files import api_workflow

pytestmark = pytest.mark.comfy


def _write(server: ComfyServer, name: str, image: np.ndarray) -> torch.Tensor:
    """Save as 8-bit PNG in the server's input folder; return what LoadImage will read, [1, 3, H, W]."""
    u8 = (image * 255 + 0.5).astype(np.uint8)
    Image.fromarray(u8).save(server.input_dir / name)
    return torch.from_numpy(u8).float().div(255).permute(2, 0, 1)[None]


def _prompt(name: str, period_px: int = 32, tile_stride_px: int = 0) -> dict[str, Any]:
    prompt = api_workflow("compare_artifacts")
    del prompt["2"], prompt["4"]
    prompt["1"]["inputs"]["image"] = name
    prompt["3"]["inputs"].update(period_px=period_px, tile_stride_px=tile_stride_px)
    # Core Preview Any shows the FLOAT outputs as text in /history.
    prompt["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}
    prompt["6"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}
    return prompt


def _text(entry: dict[str, Any], node: str) -> str:
    return "\n".join(entry["outputs"][node]["text"])


def _scores(text: str) -> list[tuple[float, float]]:
    found = re.findall(r"image \d+/\d+: periodicity ([\d.]+) \(\d+ px\) \| seams ([\d.]+)", text)
    return [(float(p), float(s)) for p, s in found]


@pytest.fixture(scope="module")
def inputs(comfy_server: ComfyServer) -> dict[str, torch.Tensor]:
    return {
        "natural": _write(comfy_server, "sr4k_inspect_natural.png", _natural(0)),
        "periodic": _write(comfy_server, "sr4k_inspect_periodic.png", _periodic(0)),
        "tiled": _write(comfy_server, "sr4k_inspect_tiled.png", _tiled(0)),
    }


def test_planted_grid_scores_high_and_smooth_image_low(comfy_server: ComfyServer, inputs: dict) -> None:
    periodic = comfy_server.run(_prompt("sr4k_inspect_periodic.png"))
    natural = comfy_server.run(_prompt("sr4k_inspect_natural.png"))
    ((p_per, s_per),) = _scores(_text(periodic, "3"))
    ((p_nat, s_nat),) = _scores(_text(natural, "3"))
    assert p_per > 0.25 and p_nat < 0.02, (p_per, p_nat)
    assert s_per < 1.3 and s_nat < 1.3, (s_per, s_nat)  # neither has tile seams
    # The node reports the library's numbers for the image LoadImage read.
    assert p_per == pytest.approx(float(periodicity_score(inputs["periodic"])[0]), abs=2e-3)
    # The FLOAT outputs (batch of one) equal the text.
    assert float(_text(periodic, "5")) == pytest.approx(p_per, abs=1e-3)
    assert float(_text(periodic, "6")) == pytest.approx(s_per, abs=1e-2)
    # Heatmap: shown on the node, image-sized, red over the grid, grey (no colour) on the natural image.
    (heat_per,) = comfy_server.images(periodic, "3")
    (heat_nat,) = comfy_server.images(natural, "3")
    assert heat_per.shape == heat_nat.shape == (SIZE, SIZE, 3)
    r, g, b = heat_per[32:-32, 32:-32].reshape(-1, 3).mean(0)
    assert r > g + 60 and r > b + 60, (r, g, b)
    spread = heat_nat.astype(int).max(-1) - heat_nat.astype(int).min(-1)
    assert np.percentile(spread, 99) <= 3  # channels equal: no overlay anywhere


def test_tiled_image_gives_high_seam_score_and_cyan_lines(comfy_server: ComfyServer, inputs: dict) -> None:
    entry = comfy_server.run(_prompt("sr4k_inspect_tiled.png"))
    text = _text(entry, "3")
    ((p, s),) = _scores(text)
    assert s > 3.0 and p < 0.05, (p, s)
    assert f"(stride {TILE} px)" in text
    assert s == pytest.approx(float(seam_score(inputs["tiled"])[0]), abs=1e-2)
    (heat,) = comfy_server.images(entry, "3")
    heat = heat.astype(int)
    cyan = (heat[..., 1] + heat[..., 2]) / 2 - heat[..., 0]
    per_column = cyan.mean(0)  # the seam between columns 63 and 64 is drawn on column 63
    assert per_column[TILE - 1] > 60 and per_column[TILE // 2 - 4 : TILE // 2 + 4].max() < 10, per_column[
        56:72
    ]
    # A known stride is taken as given.
    hinted = _text(comfy_server.run(_prompt("sr4k_inspect_tiled.png", tile_stride_px=TILE)), "3")
    assert f"(stride {TILE} px)" in hinted and _scores(hinted)[0][1] == pytest.approx(s, abs=1e-2)


def test_batch_reports_each_image_and_outputs_the_mean(comfy_server: ComfyServer, inputs: dict) -> None:
    prompt = _prompt("sr4k_inspect_periodic.png")
    prompt["7"] = {"class_type": "LoadImage", "inputs": {"image": "sr4k_inspect_tiled.png"}}
    prompt["8"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["7", 0]}}
    prompt["3"]["inputs"]["image"] = ["8", 0]
    entry = comfy_server.run(prompt)
    text = _text(entry, "3")
    lines = text.splitlines()
    assert lines[0].startswith("image 1/2: periodicity") and lines[1].startswith("image 2/2: periodicity")
    assert "periodicity" in lines[2] and lines[2].index("periodicity") < lines[2].index("seams")
    (p1, s1), (p2, s2) = _scores(text)
    assert p1 > 0.25 > p2 and s2 > 3.0 > s1
    assert float(_text(entry, "5")) == pytest.approx((p1 + p2) / 2, abs=1e-3)
    assert float(_text(entry, "6")) == pytest.approx((s1 + s2) / 2, abs=1e-2)
    assert len(comfy_server.images(entry, "3")) == 2


def test_too_small_image_is_a_clear_error(comfy_server: ComfyServer, inputs: dict) -> None:
    Image.fromarray(np.full((100, 120, 3), 128, np.uint8)).save(
        comfy_server.input_dir / "sr4k_inspect_small.png"
    )
    with pytest.raises(PromptError) as err:
        comfy_server.run(_prompt("sr4k_inspect_small.png"))
    msg = execution_error(err.value.payload)["exception_message"]
    assert (
        "120x100 is too small to measure a 32-px period" in msg and ">= 160 px" in msg and "period_px" in msg
    )


@pytest.mark.browser
def test_scores_appear_on_the_node_in_the_frontend(comfy_server: ComfyServer, inputs: dict) -> None:
    import json

    from frontend import chromium_path, load_ui_workflow, open_app
    from workflow_files import WORKFLOWS

    if chromium_path() is None:
        pytest.skip("Debian chromium not installed (scripts/test_env.sh installs it as root)")
    _write(comfy_server, "sr4k_example_patch_free.png", _natural(1))
    _write(comfy_server, "sr4k_example_tiled.png", _tiled(1))
    with open_app(comfy_server.url) as page:
        load_ui_workflow(page, json.loads((WORKFLOWS / "compare_artifacts.json").read_text()))
        placeholder = page.evaluate(
            "() => app.graph._nodes.filter(n => n.type === 'SR4K_InspectArtifacts')"
            ".map(n => n.widgets.find(w => w.name === 'scores').element.placeholder)"
        )
        assert len(placeholder) == 2 and all("scores appear here" in p for p in placeholder)
        page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        page.wait_for_function(
            "() => app.graph._nodes.filter(n => n.type === 'SR4K_InspectArtifacts')"
            ".every(n => n.widgets.find(w => w.name === 'scores').value.includes('periodicity'))",
            timeout=120_000,
        )
        shown = page.evaluate(
            "() => Object.fromEntries(app.graph._nodes.filter(n => n.type === 'SR4K_InspectArtifacts')"
            ".map(n => [n.title, n.widgets.find(w => w.name === 'scores').value]))"
        )
    ((p_free, s_free),) = _scores(shown["Inspect: patch-free"])
    ((p_tiled, s_tiled),) = _scores(shown["Inspect: tiled"])
    assert s_tiled > 3.0 > 1.3 > s_free, (s_free, s_tiled)
