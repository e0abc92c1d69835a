"""Reading a data set's files without ever waiting on one that is not a file.

A FIFO (named pipe), socket or device can appear where an image, mask or annotation file was
(by accident, or planted): opening a FIFO for reading blocks until a writer comes, so a plain
``open``, ``cv2.imread`` or ``Image.open`` on it hangs ingest, augment, export or a report for
ever. Every read of a data set's file goes through :func:`read_regular_file`, which opens
non-blocking and checks with ``fstat`` before it reads a byte.

Paths a user names on the command line (``--predictions <(...)``) are read as they are: there a
pipe is what the user meant.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or folder: not read. An ``OSError``, so callers that
    turn read errors into one clear line handle it as they handle a missing file."""


def special_file_kind(mode: int) -> str | None:
    """'FIFO (named pipe)', 'socket', ... for a file that is not a regular file (opening some blocks forever)."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def special_kind_at(path: str | os.PathLike[str]) -> str | None:
    """What stands at ``path`` when it exists but is not a regular file ('FIFO (named pipe)', ...);
    None for a regular file or nothing. Never opens it."""
    try:
        return special_file_kind(os.stat(path).st_mode)
    except OSError:
        return None


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """The file opened for binary reading; :class:`NotRegularFile` (never a wait) when it is not a
    regular file, other ``OSError``s as ``open`` raises them."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        kind = special_file_kind(os.fstat(fd).st_mode)
        if kind:
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({kind}): not opened for reading", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, as :func:`open_regular_file` opens it."""
    with open_regular_file(path) as fh:
        return fh.read()
