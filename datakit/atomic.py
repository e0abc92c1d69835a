"""Writing a file atomically: the new content appears whole, or the old file stays as it was.

Every file datakit writes that a crash or Ctrl-C must not leave half-written (run.json,
metrics.csv, checkpoints, manifest tables and headers, sweep results, pipeline records) goes
through ``write_atomic``: the content is written to a hidden temporary file next to the target
and renamed over it, which POSIX and Windows both do atomically on one file system.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` with a temporary path next to ``path``, then rename it to ``path``.

    The temporary name is unique per call, so several processes may write the same file (the
    last rename wins, and no reader ever sees a mixture). ``fsync`` flushes the content to disk
    before the rename, for files that must survive a power cut (a manifest's header).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # hidden, unique per call, and with the target's suffix: writers such as matplotlib pick the
    # file type from it
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def copy_atomic(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` becomes a copy of the file ``source``, atomically (a checkpoint written once, kept twice)."""
    import shutil

    return write_atomic(path, lambda tmp: shutil.copyfile(source, tmp))


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def write_json(path: str | os.PathLike[str], data: Any, *, fsync: bool = False, **dump: Any) -> Path:
    """JSON, indented, ending in a newline; values JSON cannot hold are written as their text."""
    options = {"indent": 2, "default": str, **dump}
    return write_text(path, json.dumps(data, **options) + "\n", fsync=fsync)
