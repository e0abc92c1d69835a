"""Run a command in a subprocess and measure its wall time and peak memory (whole process tree).

Peak memory is the peak of the summed RSS of the process and its descendants, sampled every 20 ms
from /proc (Linux). Shared copy-on-write pages of forked workers count once per process, so the
figure is an upper bound.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time


def tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of pid and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_measured(command: list[str]) -> tuple[str, float, int]:
    """stdout, wall seconds and peak tree memory (bytes) of a command; exits on failure."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(process.pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({process.returncode}): {stderr}")
    return stdout, elapsed, peak


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (DataLoader workers):
    the honest measure of work on a shared machine, where wall time counts other processes too."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
