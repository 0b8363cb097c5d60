"""srkit/tf32.py: TF32 for a block without tripping torch's check on mixed TF32 APIs.

TF32 switches are process-wide, so each case runs in its own interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

NEW_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")


def _run(code: str) -> str:
    script = "import torch\nfrom sr4k.srkit.tf32 import tf32_matmul\nm = torch.backends.cuda.matmul\n"
    done = subprocess.run(
        [sys.executable, "-c", script + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not NEW_API, reason="this torch has only the legacy TF32 flag")
@pytest.mark.parametrize("before", ["ieee", "tf32"])
def test_tf32_block_after_another_package_set_the_new_api(before: str) -> None:
    """Another package set the newer switch: the legacy flag (what the VAE attention read before) then raises,
    while the block sets TF32 and restores that package's setting."""
    out = _run(
        f"""
        m.fp32_precision = "{before}"
        try:
            m.allow_tf32
            print("legacy read ok")
        except RuntimeError as e:
            print("legacy read raises" if "mix of the legacy and new APIs" in str(e) else repr(e))
        with tf32_matmul():
            print(m.fp32_precision)
        print(m.fp32_precision)
        """
    )
    legacy = "legacy read raises" if before == "tf32" else "legacy read ok"
    assert out.splitlines() == [legacy, "tf32", before]


def test_tf32_block_leaves_the_legacy_flag_usable() -> None:
    """Nothing set before: after the block, code that uses the legacy flag (ComfyUI's k-diffusion helpers) still
    can, and sees it unchanged."""
    out = _run(
        """
        with tf32_matmul():
            pass
        print(m.allow_tf32)
        m.allow_tf32 = True
        print(m.allow_tf32)
        """
    )
    assert out.splitlines() == ["False", "True"]
