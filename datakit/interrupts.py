"""SIGTERM handled as Ctrl-C, for every command.

Schedulers (SLURM, Kubernetes, torchrun) and ``kill`` stop a job with SIGTERM, whose default ends
the process on the spot: a half-written augment output or report was left behind, blocking the
next run. Raised as ``KeyboardInterrupt`` instead, it runs the same clean-up as Ctrl-C: training
saves its last checkpoint for ``--resume``, and the other commands remove what they had begun.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` (in the main thread only: signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
