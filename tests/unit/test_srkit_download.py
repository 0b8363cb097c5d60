"""srkit.download against a local Hugging-Face-like HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from local_hub import REPO_ID, LocalHub
from sr4k.srkit.download import DownloadError, download_file, download_model, sha256_file, staging_dir
from sr4k.srkit.model_registry import GTASR_FINAL, MODELS, ModelFile, by_name


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32)


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_download_verifies_hash_and_leaves_only_the_file(hub: LocalHub, tmp_path: Path) -> None:
    data = _payload()
    hub.put(REPO_ID, "GTASR_final_phase.pth", data)
    seen: list[tuple[int, int | None]] = []
    path = download_file(
        REPO_ID,
        "GTASR_final_phase.pth",
        tmp_path / "gtasr",
        sha256=hashlib.sha256(data).hexdigest(),
        endpoint=hub.url,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == tmp_path / "gtasr" / "GTASR_final_phase.pth"
    assert path.read_bytes() == data
    assert _all_files(tmp_path / "gtasr") == ["GTASR_final_phase.pth"]  # staging folder gone
    assert seen and seen[-1] == (len(data), len(data))
    # Present now: a second call does not touch the network.
    hub.files.clear()
    assert download_file(REPO_ID, "GTASR_final_phase.pth", tmp_path / "gtasr", endpoint=hub.url) == path


def test_hash_mismatch_retries_once_then_names_the_manual_url(
    hub: LocalHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub.put(REPO_ID, "GTASR_final_phase.pth", _payload(seed=1))
    good = hashlib.sha256(_payload(seed=2)).hexdigest()
    dest = tmp_path / "models" / "gtasr"
    with caplog.at_level(logging.WARNING), pytest.raises(DownloadError) as err:
        download_file(REPO_ID, "GTASR_final_phase.pth", dest, sha256=good, endpoint=hub.url)
    msg = str(err.value)
    assert hub.gets[f"/{REPO_ID}/resolve/main/GTASR_final_phase.pth"] == 2  # first try + one retry
    assert "after 2 attempt(s)" in msg and msg.count("SHA-256 mismatch") == 2
    assert f"{hub.url}/{REPO_ID}/resolve/main/GTASR_final_phase.pth" in msg
    assert str(dest / "GTASR_final_phase.pth") in msg
    assert _all_files(dest) == []  # nothing half-written or unverified left behind
    assert not staging_dir(dest, "GTASR_final_phase.pth").exists()
    assert "corrupt" in caplog.text


def test_a_corrupt_first_attempt_is_fixed_by_the_retry(hub: LocalHub, tmp_path: Path) -> None:
    good, bad = _payload(seed=3), _payload(seed=4)
    hub.put(REPO_ID, "GTASR_first_phase.pth", bad, good)
    out = download_file(
        REPO_ID, "GTASR_first_phase.pth", tmp_path, sha256=hashlib.sha256(good).hexdigest(), endpoint=hub.url
    )
    assert out.read_bytes() == good
    assert hub.gets[f"/{REPO_ID}/resolve/main/GTASR_first_phase.pth"] == 2
    assert _all_files(tmp_path) == ["GTASR_first_phase.pth"]


def test_dropped_connection_is_resumed_with_a_range_request(hub: LocalHub, tmp_path: Path) -> None:
    from huggingface_hub import constants

    # Bigger than two download chunks, so the first (truncated) response delivers whole chunks to resume from.
    data = _payload(2 * constants.DOWNLOAD_CHUNK_SIZE + 4096, seed=5)
    hub.put(REPO_ID, "GTASR_final_phase.pth", data)
    hub.drop_first_get.add(f"/{REPO_ID}/resolve/main/GTASR_final_phase.pth")
    out = download_file(
        REPO_ID, "GTASR_final_phase.pth", tmp_path, sha256=hashlib.sha256(data).hexdigest(), endpoint=hub.url
    )
    assert out.read_bytes() == data
    assert hub.ranges and hub.ranges[0].startswith("bytes=") and int(hub.ranges[0][6:].split("-")[0]) > 0


def test_missing_file_is_a_clear_error_after_one_retry(hub: LocalHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as err:
        download_file(REPO_ID, "GTASR_final_phase.pth", tmp_path, endpoint=hub.url, retries=1)
    msg = str(err.value)
    assert "after 2 attempt(s)" in msg and "NotFound" in msg
    assert "Download it by hand from" in msg and str(tmp_path / "GTASR_final_phase.pth") in msg
    assert [p for p in _all_files(tmp_path) if not p.endswith((".lock", ".metadata"))] == []


def test_offline_mode_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError) as err:
        download_model(GTASR_FINAL, tmp_path, retries=0)
    assert "https://huggingface.co/Blaze-UESTC/GTASR/resolve/main/GTASR_final_phase.pth" in str(err.value)


def test_progress_exception_cancels_without_retry(hub: LocalHub, tmp_path: Path) -> None:
    hub.put(REPO_ID, "GTASR_final_phase.pth", _payload())

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int | None) -> None:
        raise Cancelled()

    with pytest.raises(Cancelled):
        download_file(REPO_ID, "GTASR_final_phase.pth", tmp_path, endpoint=hub.url, progress=cancel)
    assert hub.gets[f"/{REPO_ID}/resolve/main/GTASR_final_phase.pth"] == 1
    assert not (tmp_path / "GTASR_final_phase.pth").exists()


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = _payload(5_000_000, seed=6)  # larger than one read chunk
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_registry_rows() -> None:
    assert by_name("GTASR_final_phase.pth").url() == (
        "https://huggingface.co/Blaze-UESTC/GTASR/resolve/main/GTASR_final_phase.pth"
    )
    assert {r.filename: r.folder for r in MODELS} == {
        "GTASR_final_phase.pth": "gtasr",
        "GTASR_first_phase.pth": "gtasr",
        "ae.safetensors": "vae",
        "flux1-dev.safetensors": "diffusion_models",
    }
    assert by_name("ae.safetensors").repo_id == "black-forest-labs/FLUX.1-dev"
    with pytest.raises(ValueError, match="unknown model file 'x.pth'"):
        by_name("x.pth")
    with pytest.raises(ValueError, match="64 lowercase hex"):
        ModelFile("a.pth", "o/r", "gtasr", sha256="ABC")
    with pytest.raises(ValueError, match="owner/name"):
        ModelFile("a.pth", "repo", "gtasr")
