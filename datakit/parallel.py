"""The one process pool: map a function over jobs in worker processes, with a progress bar.

Workers ignore Ctrl-C: it is the parent's to handle; it terminates the pool and the caller
writes nothing. A worker that died of it mid-task would leave the parent waiting forever.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Callable, Iterable, Sequence, TypeVar

from datakit.console import progress_bar

J = TypeVar("J")
R = TypeVar("R")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        pool = ctx.Pool(workers, initializer=_ignore_sigint)
        try:
            mapper = pool.imap if ordered else pool.imap_unordered
            for result in mapper(fn, jobs, chunksize=chunksize):
                yield result
                advance()
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
