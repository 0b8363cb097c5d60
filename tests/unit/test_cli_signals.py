"""SIGTERM (a SLURM time limit, ``scancel``) during a folder run: the process exits with status 143 through the
run's cleanup, so the write under way is finished and no ``.name.partial-*`` temporary is left behind.

Run in a child process (the signal would otherwise stop pytest): the folder loop with the CLI's reader, writer and
``sigterm_exits``; the model sends SIGTERM to its own process while image 1 is still being written. Python's
default for SIGTERM would end the process at once, leaving image 1's temporary and no image 1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from PIL import Image

from comfy_harness import REPO
from gtasr_support import lowres

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from contextlib import nullcontext
    from pathlib import Path
    import torch.nn.functional as F
    from sr4k.cli.folder import Job, run_folder
    from sr4k.cli.images import load_image, save_image
    from sr4k.cli.shard import write_atomically
    try:
        from sr4k.cli.signals import sigterm_exits
    except ImportError:  # before the fix: Python's default SIGTERM
        sigterm_exits = nullcontext

    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    jobs = [Job(i + 1, src / f"in{i}.png", dst / f"in{i}.png") for i in range(3)]
    writing = threading.Event()
    calls = []

    def model(image):
        calls.append(1)
        if len(calls) == 2:  # image 2, while image 1 is being written
            writing.wait(20)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
        return F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)

    def write_slowly(out, path):
        path.write_bytes(b"first bytes of a PNG")  # the temporary exists from now on
        writing.set()
        time.sleep(0.5)  # a slow disk: the signal comes meanwhile
        save_image(out, path)

    def save(job, image, out):
        write_atomically(job.dst, lambda path: write_slowly(out, path))

    with sigterm_exits():
        run_folder(jobs, load_image, model, save, io_workers=2)
    """
)


def test_sigterm_finishes_the_write_under_way_and_leaves_no_temporary(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    for i in range(3):
        Image.fromarray(lowres(i, 16, 16)).save(src / f"in{i}.png")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(dst)],
        cwd=REPO.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert [p.name for p in dst.iterdir()] == ["in0.png"]  # image 1 finished; nothing else, no temporary
    assert Image.open(dst / "in0.png").size == (32, 32)
