"""The model files the pack knows how to fetch: where they come from, where they go, how to check them.

Data only (rows of :class:`ModelFile`); the downloading is in :mod:`srkit.download`. ``folder`` is the
ComfyUI model folder (``models/<folder>``) a loader lists the file from; the headless CLI keeps its own
cache instead. Sizes and SHA-256 are filled in where they are published; ``None`` means unknown (the
download is then checked for completeness by size only, as the Hub reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GTASR_FINAL", "GTASR_FIRST", "HF_ENDPOINT", "MODELS", "ModelFile", "by_name"]

HF_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class ModelFile:
    """One downloadable weight file on the Hugging Face Hub."""

    filename: str
    repo_id: str
    folder: str
    size: int | None = None
    sha256: str | None = None
    gated: bool = False  # the Hub asks for a login and licence acceptance first
    revision: str = "main"

    def __post_init__(self) -> None:
        if "/" not in self.repo_id or self.repo_id.count("/") != 1:
            raise ValueError(f"repo_id={self.repo_id!r} must be 'owner/name'")
        if not self.filename or self.filename.startswith("/") or ".." in self.filename.split("/"):
            raise ValueError(f"filename={self.filename!r} must be a relative path inside the repo")
        if self.sha256 is not None and (len(self.sha256) != 64 or self.sha256.strip("0123456789abcdef")):
            raise ValueError(f"sha256={self.sha256!r} must be 64 lowercase hex digits (or None if unknown)")
        if self.size is not None and self.size <= 0:
            raise ValueError(f"size={self.size} must be a positive byte count (or None if unknown)")

    def url(self, endpoint: str | None = None) -> str:
        """The direct download URL, e.g. ``https://huggingface.co/<repo>/resolve/main/<file>``."""
        return (
            f"{(endpoint or HF_ENDPOINT).rstrip('/')}/{self.repo_id}/resolve/{self.revision}/{self.filename}"
        )


GTASR_FINAL = ModelFile("GTASR_final_phase.pth", "Blaze-UESTC/GTASR", "gtasr")
"""The released GTASR weights (stage II, BasicSR ``{'params', 'params_ema'}``; inference uses the EMA)."""

GTASR_FIRST = ModelFile("GTASR_first_phase.pth", "Blaze-UESTC/GTASR", "gtasr")
"""Stage-I GTASR weights (initialisation of stage II; same architecture)."""

MODELS: tuple[ModelFile, ...] = (
    GTASR_FINAL,
    GTASR_FIRST,
    # FLUX.1 [dev] files are gated (licence acceptance on the Hub). Sizes and hashes as published.
    ModelFile(
        "ae.safetensors",
        "black-forest-labs/FLUX.1-dev",
        "vae",
        size=335_304_388,
        sha256="afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38",
        gated=True,
    ),
    ModelFile(
        "flux1-dev.safetensors",
        "black-forest-labs/FLUX.1-dev",
        "diffusion_models",
        size=23_802_932_552,
        sha256="4610115bb0c89560703c892c59ac2742fa821e60ef5871b33493ba544683abd7",
        gated=True,
    ),
)


def by_name(filename: str) -> ModelFile:
    """The registry row of ``filename``, or a ValueError listing the known files."""
    for row in MODELS:
        if row.filename == filename:
            return row
    raise ValueError(f"unknown model file {filename!r}; known: {', '.join(r.filename for r in MODELS)}")
