"""One rich console and progress bar style for every command."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator["_Advance"]:
    """A progress bar on stderr; disabled (a no-op) when not wanted or not a terminal-like run."""
    if not enabled or total == 0:
        yield _Advance(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not sys.stderr.isatty(),
        disable=not enabled,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield _Advance(progress, task)


class _Advance:
    def __init__(self, progress: Progress | None, task: object) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)  # type: ignore[arg-type]


def shown(value: object) -> str:
    """Data (a class name, a path, a reason) for a rich table or line, shown as written: rich would
    read "[red]cats" or "box [nan, 4]" as markup and drop the brackets."""
    from rich.markup import escape

    return escape(str(value))
