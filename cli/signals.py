"""SIGTERM (a SLURM time limit or ``scancel``, ``kill``, a launcher stopping its workers) as a clean exit.

Python's default for SIGTERM ends the process at once: no ``finally`` runs, so a folder run would leave the
``.name.partial-*`` temporary of every write under way in the output folder. Inside :func:`sigterm_exits`, SIGTERM
raises ``SystemExit(143)`` (128 + 15, the status a shell reports for SIGTERM) in the main thread instead, so the run
stops the way Ctrl-C stops it: the writes under way are finished and their temporaries renamed or removed. SLURM
sends SIGKILL only after its grace period (``KillWait``, 30 s by default), which one write fits in.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["SIGTERM_STATUS", "sigterm_exits"]

log = logging.getLogger(__name__)

SIGTERM_STATUS = 128 + signal.SIGTERM


def _exit(signum: int, frame: FrameType | None) -> None:
    log.warning("sr4k: terminated (SIGTERM); finishing the writes under way")
    raise SystemExit(SIGTERM_STATUS)


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)`` in the main thread; the old handler is restored after.

    Does nothing outside the main thread (Python lets only the main thread set signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
