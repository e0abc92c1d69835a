"""The one process pool: map a function over jobs in worker processes, with a progress bar.

Workers ignore Ctrl-C and die of SIGTERM: both are the parent's to handle; it terminates the pool
(SIGTERM to each worker) and the caller writes nothing. A worker that raised KeyboardInterrupt
instead (the parent's own SIGTERM handler, inherited through fork) could die holding the task
queue's lock, and the parent then waited for it forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from datakit.console import progress_bar

J = TypeVar("J")
R = TypeVar("R")


def worker_signals() -> None:
    """In a worker: Ctrl-C ignored, SIGTERM fatal (pool initializers call it, for spawned workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def forking_workers() -> Iterator[None]:
    """Around creating a pool: forked workers are born with worker_signals' handlers, so a signal
    arriving before their initializer runs finds them as it will find them later."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def imap_progress(fn: Callable[[J], R], jobs: Sequence[J], workers: int, description: str, show_progress: bool,
                  serial_below: int = 64, ordered: bool = True, clean_start: bool = False) -> Iterable[R]:
    """Results of ``fn`` over ``jobs`` (in order unless ``ordered`` is False), one bar tick each.

    ``clean_start`` starts workers from a fresh process (forkserver) instead of forking the
    caller: needed when ``fn`` uses OpenCV, whose thread pool, if the caller used it, is copied
    into a forked child with its locks held and deadlocks there.
    """
    with progress_bar(description, len(jobs), show_progress) as advance:
        if workers <= 1 or len(jobs) < serial_below:
            for job in jobs:
                yield fn(job)
                advance()
            return
        chunksize = max(1, min(64, len(jobs) // (workers * 8) or 1))
        methods = multiprocessing.get_all_start_methods()
        method = ("forkserver" if "forkserver" in methods else "spawn") if clean_start else (
            "fork" if "fork" in methods else "spawn")
        ctx = multiprocessing.get_context(method)
        with forking_workers():
            pool = ctx.Pool(workers, initializer=worker_signals)
        try:
            mapper = pool.imap if ordered else pool.imap_unordered
            for result in mapper(fn, jobs, chunksize=chunksize):
                yield result
                advance()
            pool.close()
            pool.join()
        except BaseException:
            # also when the interrupt comes during the join above: a pool left unterminated was
            # joined again at interpreter exit, which could wait forever
            pool.terminate()
            pool.join()
            raise
