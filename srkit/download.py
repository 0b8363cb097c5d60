"""Download one model file from the Hugging Face Hub into a folder: checked, atomic, with one retry.

The file is fetched with ``huggingface_hub.hf_hub_download`` (which honours ``HF_ENDPOINT``, ``HF_TOKEN``,
proxies and resumes dropped connections) into a hidden staging folder beside the target, its SHA-256 is
checked when known, and only then is it moved under its final name. So the target folder never holds a
half-written or unverified file under a model name, and a failed attempt is retried once from scratch
before a :class:`DownloadError` says where to download the file by hand and where to put it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .images import Progress  # here: progress(bytes_done, bytes_total_or_None)
from .model_registry import HF_ENDPOINT, ModelFile

__all__ = [
    "DownloadError",
    "Progress",
    "download_file",
    "download_model",
    "manual_download_message",
    "sha256_file",
    "staging_dir",
]

log = logging.getLogger(__name__)


HASH_CHUNK = 1 << 22  # 4 MiB reads keep hashing a multi-GB file fast without holding it in memory


class DownloadError(RuntimeError):
    """A file could not be downloaded and verified; the message says how to get it by hand."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Lower-case hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manual_download_message(
    repo_id: str,
    filename: str,
    dest_dir: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    revision: str = "main",
) -> str:
    """'Download it by hand from <url> and put it in <folder>' for error messages."""
    url = ModelFile(filename, repo_id, "", revision=revision).url(endpoint or _default_endpoint())
    return f"Download it by hand from {url} and save it as {Path(dest_dir) / filename}."


def staging_dir(dest_dir: str | os.PathLike[str], filename: str) -> Path:
    """Hidden per-file folder beside the target where the download lands before it is verified."""
    return Path(dest_dir) / f".{Path(filename).name}.sr4k-download"


def _default_endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return HF_ENDPOINT
    return constants.ENDPOINT


def _progress_tqdm(progress: Progress) -> type:
    """A huggingface_hub tqdm class that reports bytes to ``progress`` (even when the bar is hidden)."""
    from huggingface_hub.utils import tqdm

    class ReportingTqdm(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sr4k_done = int(kwargs.get("initial") or 0)
            self._sr4k_total = kwargs.get("total")

        def update(self, n: float | None = 1) -> bool | None:
            self._sr4k_done += int(n or 0)
            progress(self._sr4k_done, self._sr4k_total)
            return super().update(n)

    return ReportingTqdm


def _hub_download(
    repo_id: str,
    filename: str,
    staging: Path,
    *,
    endpoint: str | None,
    revision: str,
    force: bool,
    progress: Progress | None,
) -> Path:
    from huggingface_hub import hf_hub_download

    kwargs: dict[str, Any] = {}
    if progress is not None and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = _progress_tqdm(progress)
    path = hf_hub_download(
        repo_id,
        filename,
        revision=revision,
        local_dir=staging,
        endpoint=endpoint,
        force_download=force,
        **kwargs,
    )
    return Path(path)


def _clean_staging(staging: Path) -> None:
    """Remove the staging folder unless it holds a partial download a later call could resume."""
    if staging.is_dir() and not any(p.suffix == ".incomplete" for p in staging.rglob("*")):
        shutil.rmtree(staging, ignore_errors=True)


def _describe(err: BaseException) -> str:
    from huggingface_hub.utils import GatedRepoError

    text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    if isinstance(err, GatedRepoError):
        text += " (a gated repo: accept its licence on the model page and log in with `hf auth login`)"
    return text


def download_file(
    repo_id: str,
    filename: str,
    dest_dir: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    endpoint: str | None = None,
    retries: int = 1,
    revision: str = "main",
    progress: Progress | None = None,
) -> Path:
    """``dest_dir/filename``, downloaded from the Hub repo ``repo_id`` if it is not there yet.

    ``sha256`` (lower-case hex) is checked after each download; ``endpoint`` overrides ``HF_ENDPOINT``.
    A failed or mismatching attempt is retried ``retries`` times with a fresh download, then a
    DownloadError names the cause, the manual-download URL and the target path. A file already at the
    target is trusted (only verified downloads are ever moved there). Exceptions raised by
    ``progress`` (e.g. a user cancel) propagate unchanged.
    """
    if retries < 0:
        raise ValueError(f"retries={retries} must be >= 0")
    dest = Path(dest_dir) / filename
    if dest.is_file():
        log.info("%s already present at %s", filename, dest)
        return dest
    staging = staging_dir(dest_dir, filename)
    cancelled: list[BaseException] = []

    def report(done: int, total: int | None) -> None:
        try:
            progress(done, total)  # type: ignore[misc]
        except BaseException as err:
            cancelled.append(err)
            raise

    failures: list[str] = []
    last: BaseException | None = None
    for attempt in range(1, retries + 2):
        log.info("downloading %s from %s (attempt %d of %d) ...", filename, repo_id, attempt, retries + 1)
        try:
            got = _hub_download(
                repo_id,
                filename,
                staging,
                endpoint=endpoint,
                revision=revision,
                force=attempt > 1,
                progress=report if progress is not None else None,
            )
        except Exception as err:  # transport errors differ across huggingface_hub versions (requests/httpx)
            if cancelled:
                raise
            failures.append(_describe(err))
            last = err
            log.warning("download of %s failed: %s", filename, failures[-1])
            continue
        if sha256 is not None:
            actual = sha256_file(got)
            if actual != sha256.lower():
                got.unlink(missing_ok=True)
                failures.append(f"SHA-256 mismatch: expected {sha256.lower()}, got {actual}")
                last = None
                log.warning("download of %s is corrupt: %s", filename, failures[-1])
                continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, dest)  # same folder tree: an atomic rename, never a partial file under the name
        shutil.rmtree(staging, ignore_errors=True)
        log.info("saved %s (%d bytes)", dest, dest.stat().st_size)
        return dest
    _clean_staging(staging)
    raise DownloadError(
        f"could not download {filename} from the Hugging Face repo {repo_id} after {retries + 1} attempt(s): "
        + "; ".join(failures)
        + ". "
        + manual_download_message(repo_id, filename, dest_dir, endpoint=endpoint, revision=revision)
    ) from last


def download_model(
    row: ModelFile,
    dest_dir: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    retries: int = 1,
    progress: Progress | None = None,
) -> Path:
    """:func:`download_file` for a registry row (its repo, revision and hash)."""
    return download_file(
        row.repo_id,
        row.filename,
        dest_dir,
        sha256=row.sha256,
        endpoint=endpoint,
        retries=retries,
        revision=row.revision,
        progress=progress,
    )
