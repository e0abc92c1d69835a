"""What a person watching ``datakit train`` sees: a live batch bar and one line per epoch.

The bar is refreshed at most a few times a second, whatever the batch rate, so drawing it costs
nothing measurable next to the training step.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from datakit.console import console as default_console

REFRESH_SECONDS = 0.2
SHORT = {"accuracy": "acc", "macro_f1": "f1"}


def _short(metric: str) -> str:
    return SHORT.get(metric, metric)


class TrainingDisplay:
    def __init__(self, enabled: bool, epochs: int, console: Console | None = None,
                 metrics: Sequence[str] = ("accuracy",)) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.metrics = tuple(metrics)  # the task's metric names; the first is shown on the live bar
        self.console = console or default_console
        self._progress: Progress | None = None
        self._task: Any = None
        self._pending = 0
        self._last_draw = 0.0

    def __enter__(self) -> "TrainingDisplay":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                console=self.console, transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)

    def show(self, renderable: Any) -> None:
        """A rich renderable (a table) above the live bar."""
        if self.enabled:
            target = self._progress.console if self._progress is not None else self.console
            target.print(renderable)

    def start_task(self, description: str, total: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total, stats="")
        self._pending = 0

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.start_task(f"epoch {epoch}/{self.epochs}", batches)

    def advance(self, steps: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps)

    def batch(self, loss: float, metrics: Callable[[], dict[str, float]]) -> None:
        """One batch done; ``metrics`` computes the running metrics, called only when the bar is redrawn."""
        if self._progress is None:
            return
        self._pending += 1
        now = time.perf_counter()
        if now - self._last_draw >= REFRESH_SECONDS:
            first = self.metrics[0]
            stats = f"loss {loss:.4f}  {_short(first)} {metrics()[first]:.3f}"
            self._progress.update(self._task, advance=self._pending, stats=stats)
            self._pending = 0
            self._last_draw = now

    def phase(self, name: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=self._pending, stats=name)
            self._pending = 0

    def end_epoch(self, record: dict[str, float], improved: bool, monitor: str) -> None:
        if not self.enabled:
            return
        mark = f"  [green]* best {monitor}[/]" if improved else ""
        parts = [f"epoch {int(record['epoch']):>3}/{self.epochs}"]
        for split in ("train", "val"):
            values = " ".join(f"{_short(m)} {record[f'{split}_{m}']:.4f}" for m in self.metrics
                              if f"{split}_{m}" in record)
            parts.append(f"{split} loss {record[f'{split}_loss']:.4f} {values}")
        line = "  ".join(parts) + f"  lr {record['lr']:.2e}  {record['seconds']:.1f}s{mark}"
        target = self._progress.console if self._progress is not None else self.console
        target.print(line, highlight=False, soft_wrap=True)
