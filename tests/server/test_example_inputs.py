"""The templates run as opened: their example input images ship with the pack and reach ComfyUI's input
folder at start-up, without ever replacing a user's file of the same name.

The server test starts a **fresh** ComfyUI (its own empty input folder, plus one user file that must
survive) and runs every template's ``LoadImage`` nodes for real.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_harness import ComfyServer, harness_available, start_server, stop_server
from make_example_inputs import INPUTS, example_inputs
from workflow_files import api_workflow, ui_workflows

MAX_BYTES = 32_000  # small: the pack ships them in every install


def _template_images() -> dict[str, set[str]]:
    """Image file -> the templates whose LoadImage nodes open it."""
    used: dict[str, set[str]] = {}
    for path in ui_workflows():
        for node in api_workflow(path.stem).values():
            if node["class_type"] == "LoadImage":
                used.setdefault(node["inputs"]["image"], set()).add(path.stem)
    return used


def test_shipped_inputs_are_ours_small_and_reproducible() -> None:
    shipped = {p.name: p for p in INPUTS.glob("*.png")}
    made = example_inputs()
    assert set(shipped) == set(made)
    for name, pixels in made.items():
        assert shipped[name].stat().st_size < MAX_BYTES, f"{name}: {shipped[name].stat().st_size} bytes"
        with Image.open(shipped[name]) as im:
            got = np.asarray(im.convert("RGB")).astype(int)
        assert got.shape == pixels.shape, name
        # Equal up to a rounding flip of bicubic floats across torch versions (6-bit levels: 4 apart).
        diff = np.abs(got - pixels)
        assert diff.max() <= 4 and (diff > 0).mean() < 1e-3, (
            f"{name}: rerun tests/support/make_example_inputs.py"
        )


def test_the_compare_template_inputs_show_what_they_are_for() -> None:
    """compare_artifacts: the clean upscale has no seams (score about 1), the tiled one clearly has them."""
    from sr4k.srkit.artifacts import inspect_one

    scores = {}
    for name in ("sr4k_example_patch_free.png", "sr4k_example_tiled.png"):
        with Image.open(INPUTS / name) as im:
            t = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).float().div(255).permute(2, 0, 1)
        scores[name] = inspect_one(t, 32, 0, lambda k: None)[0]
    clean, tiled = scores["sr4k_example_patch_free.png"], scores["sr4k_example_tiled.png"]
    assert clean.seams < 1.5 < 10 < tiled.seams, (clean, tiled)  # 1.5: the guide's "visible seams" line
    assert clean.periodicity < 0.05 and tiled.periodicity < 0.05


def test_every_template_image_ships_and_every_shipped_image_is_used() -> None:
    used = _template_images()
    assert used, "no template loads an image?"
    assert set(used) == {p.name for p in INPUTS.glob("*.png")}, used


def _run_load_images(server: ComfyServer, images: list[str]) -> list[np.ndarray]:
    prompt = {}
    for i, name in enumerate(images):
        prompt[f"l{i}"] = {"class_type": "LoadImage", "inputs": {"image": name}}
        prompt[f"p{i}"] = {"class_type": "PreviewImage", "inputs": {"images": [f"l{i}", 0]}}
    entry = server.run(prompt)
    return [server.images(entry, f"p{i}")[0] for i in range(len(images))]


@pytest.mark.comfy
def test_fresh_comfyui_gets_the_inputs_and_keeps_a_users_file(tmp_path: Path) -> None:
    if not harness_available():
        pytest.skip("ComfyUI harness not prepared; run `bash scripts/test_env.sh`")
    used = sorted(_template_images())
    mine = used[0]
    # A user's own image that happens to have a template's file name: must survive start-up untouched.
    user_file = tmp_path / "input" / mine
    user_file.parent.mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(buf, format="PNG")
    user_file.write_bytes(buf.getvalue())
    server = start_server(tmp_path)
    try:
        assert user_file.read_bytes() == buf.getvalue(), "start-up overwrote a user's input file"
        for name in used:
            if name != mine:
                assert (server.input_dir / name).read_bytes() == (INPUTS / name).read_bytes(), name
        listed = server.get_json("/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"][0]
        assert set(used) <= set(listed), sorted(set(used) - set(listed))
        # Every template's LoadImage really opens its file (a real run on the fresh server).
        outs = dict(zip(used, _run_load_images(server, used), strict=True))
        for name, out in outs.items():
            expected = (
                np.full((8, 8, 3), 200)
                if name == mine
                else np.asarray(Image.open(INPUTS / name).convert("RGB"))
            )
            # LoadImage -> float -> PreviewImage truncates to 8 bits: at most one level off.
            assert (
                out.shape[:2] == expected.shape[:2] and np.abs(out[..., :3].astype(int) - expected).max() <= 1
            ), name
    finally:
        stop_server(server)
