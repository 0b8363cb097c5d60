"""Install a ``torchaudio`` stand-in into this interpreter's site-packages where a ComfyUI tree needs one.

Usage (``scripts/test_env.sh``, test venvs only): ``venv/bin/python scripts/torchaudio_stub.py COMFY_TREE``.

No torchaudio wheel exists for the CPU torch the test venv uses, yet newer ComfyUI trees (0.33) import it at
the top of core modules that model loading needs (``comfy.text_encoders.gemma4``). When no real torchaudio is
installed and ``import comfy.sd`` fails for want of it, this writes a stand-in package with its own
``dist-info`` (so tools that walk installed distributions see it): its imports succeed, and touching anything
in it raises an error naming the cause, so only audio nodes (which this pack never uses) fail, loudly.
A tree that starts without torchaudio (0.3.75) gets no stand-in. Never run by the pack itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

VERSION = "0.0.0+sr4kstub"
MODULE = '''"""Stand-in written by sr4k's scripts/torchaudio_stub.py: no torchaudio wheel exists for this CPU torch."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(
        f"torchaudio.{name}: this is a stand-in package from sr4k's scripts/test_env.sh (no torchaudio "
        "wheel for this CPU torch); audio nodes are unavailable in this test venv"
    )
'''
# Submodules ComfyUI imports by name (``import torchaudio.functional as AF``); each is the same stand-in.
SUBMODULES = ("functional", "transforms", "io")
PROBE = "import comfy.cli_args as a; a.args.cpu = True; import comfy.sd"


def _installed_version() -> str | None:
    try:
        return metadata.version("torchaudio")
    except metadata.PackageNotFoundError:
        return None


def _remove(site: Path) -> None:
    shutil.rmtree(site / "torchaudio", ignore_errors=True)
    shutil.rmtree(site / f"torchaudio-{VERSION}.dist-info", ignore_errors=True)


def _write(site: Path) -> None:
    pkg = site / "torchaudio"
    pkg.mkdir()
    files = ["__init__.py", *(f"{s}.py" for s in SUBMODULES)]
    for name in files:
        (pkg / name).write_text(MODULE)
    info = site / f"torchaudio-{VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchaudio\nVersion: {VERSION}\n")
    (info / "INSTALLER").write_text("sr4k-test-env\n")
    record = [f"torchaudio/{n},," for n in files] + [
        f"{info.name}/{n},," for n in ("METADATA", "INSTALLER", "RECORD")
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def main(tree: str) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    version = _installed_version()
    if version is not None and version != VERSION:
        return  # a real torchaudio
    _remove(site)  # probe honestly, without an old stand-in
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, capture_output=True, text=True)
    if probe.returncode == 0:
        return
    if "No module named 'torchaudio'" not in probe.stderr:
        sys.exit(
            f"importing comfy.sd from {tree} fails for another reason than torchaudio:\n{probe.stderr[-3000:]}"
        )
    _write(site)
    print(f"torchaudio stand-in written to {site / 'torchaudio'} (this ComfyUI's model loading imports it)")


if __name__ == "__main__":
    main(sys.argv[1])
