"""Install a ``torchaudio`` stand-in into the running interpreter's site-packages (test venvs only).

No torchaudio wheel exists for the CPU torch the test venv uses, yet newer ComfyUI trees (0.33) import it
at the top of core modules that model loading needs (``comfy.text_encoders.gemma4``). The stand-in makes
those imports succeed; touching anything in it raises an error that names the cause, so only audio nodes
(which this pack never uses) fail, and they fail loudly. Run by ``scripts/test_env.sh``, never by the pack.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

MODULE = '''"""Stand-in written by sr4k's scripts/test_env.sh: no torchaudio wheel exists for this CPU torch."""


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


def main() -> None:
    root = Path(sysconfig.get_paths()["purelib"]) / "torchaudio"
    root.mkdir(exist_ok=True)
    (root / "__init__.py").write_text(MODULE)
    for sub in SUBMODULES:
        (root / f"{sub}.py").write_text(MODULE)
    print(f"torchaudio stand-in written to {root}")


if __name__ == "__main__":
    main()
