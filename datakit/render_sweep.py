"""Rich output for sweeps: live progress while trials run, and the leaderboard at the end."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datakit.console import shown
from datakit.render import path_line, titled

STATE_STYLE = {"complete": "green", "pruned": "yellow", "failed": "red", "interrupted": "magenta",
               "running": "cyan", "waiting": "dim", "duplicate": "dim"}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short(value: Any) -> str:
    if isinstance(value, float) and not pd.isna(value):
        return f"{value:.4g}"
    if isinstance(value, str) and value[:1] in "[{":
        return value.replace(", ", ",")  # JSON lists: one unbreakable word when a line wraps
    return _fmt(value)


class SweepDisplay:
    """A progress bar over trials (stderr) and one line per finished trial; silent when disabled."""

    def __init__(self, console: Console | None, enabled: bool, total: int, space: Any, done: int = 0) -> None:
        from datakit.console import console as default_console

        self.console = console or default_console
        self.enabled = enabled
        self.space = space
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=not sys.stderr.isatty(), disable=not enabled,
        )
        self.task = self.progress.add_task("sweep", total=total, completed=min(done, total))

    def __enter__(self) -> "SweepDisplay":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def note(self, text: str) -> None:
        if self.enabled:
            self.progress.console.print(text, highlight=False)

    def epoch(self, trial: int, record: dict[str, float]) -> None:
        metric = self.space.metric
        self.progress.update(self.task, description=f"sweep: trial {trial}, epoch {int(record['epoch'])}, "
                                                    f"{metric} {record[metric]:.4f}")

    def trial_done(self, trial: Any, state: str) -> None:
        self.progress.advance(self.task)
        if not self.enabled:
            return
        attrs = trial.user_attrs
        params = "  ".join(f"{k}={_short(trial.params.get(k))}" for k in self.space.keys)
        style = STATE_STYLE.get(state, "")
        line = (f"trial {trial.number:>3} [{style}]{state:<9}[/] val_acc {_fmt(attrs.get('val_accuracy'))}  "
                f"test_acc {_fmt(attrs.get('test_accuracy'))}  {attrs.get('epochs', 0)} ep  "
                f"{_fmt(attrs.get('seconds'), 1)}s  {params}")
        if attrs.get("origin"):
            line += f"  ({attrs['origin']})"
        if attrs.get("error") and state != "pruned":
            line += f"\n          [red]{attrs['error']}[/]"
        self.progress.console.print(line, highlight=False, soft_wrap=True)


def short_names(keys: list[str]) -> dict[str, str]:
    """``optim.lr`` -> ``lr`` where the last part is unique among the searched keys."""
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: t if tails.count(t) == 1 else k for k, t in zip(keys, tails)}


def leaderboard(console: Console, result: Any, top: int = 10) -> None:
    """The best ``top`` complete trials by the validation metric, then counts and failures."""
    from datakit.sweep_storage import GRACE_SECONDS

    table = result.table
    ranked = result.ranked().head(top)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
    names = short_names(result.params)
    metric, tie = result.metric, result.tie_break[0]
    from_defaults = "origin" in ranked.columns and ranked["origin"].notna().any()
    marked = "; *: the defaults (what datakit train chooses)" if from_defaults else ""
    view = titled(f"sweep {result.output.name}: top {len(ranked)} of {len(table)} trials by {metric} ({counts})",
                  caption=f"val: at the best epoch; ep: epochs run{marked}; {result.tie_break_note}; {result.note}",
                 box=box.SIMPLE_HEAD)
    # the ranking metric, then the column that breaks its ties
    heads = {"val_accuracy": "val\nacc", "val_loss": "val\nloss"}
    for name in ("#", "trial", heads.get(metric, metric), heads.get(tie, tie), "test\nacc", "ep", "sec", "weights"):
        view.add_column(name, justify="right", no_wrap=True)
    # the searched values share one wrapping column, so many keys still fit an 80-column terminal
    view.add_column("configuration", ratio=1, min_width=14)
    for place, (_, row) in enumerate(ranked.iterrows(), start=1):
        configuration = "  ".join(f"{names[k]}={_short(row[k])}" for k in result.params)
        star = "*" if from_defaults and not pd.isna(row["origin"]) else ""
        view.add_row(str(place), f"{row['trial']}{star}", _fmt(row.get(metric, row["value"])), _fmt(row.get(tie)),
                     _fmt(row["test_accuracy"]), _fmt(row["epochs"]), _fmt(row["seconds"], 0),
                     f"{int(row['parameters']):,}" if not pd.isna(row["parameters"]) else "-", configuration)
    console.print(view)
    failed = table[table["state"] == "failed"]
    for _, row in failed.head(5).iterrows():
        console.print(f"[red]trial {row['trial']} failed:[/] {shown(row['error'])}", highlight=False, soft_wrap=True)
    if len(failed) > 5:
        console.print(f"... and {len(failed) - 5} more failed trials (see results.csv)")
    for line in result.recovered:
        console.print(f"[magenta]recovered:[/] {shown(line)}", highlight=False, soft_wrap=True)
    for line in result.running_elsewhere:
        console.print(f"[cyan]still running:[/] {shown(line)} (if that process died, a run after "
                      f"{GRACE_SECONDS} s without its heartbeat queues it again)", highlight=False, soft_wrap=True)
    if result.best:
        best = result.best
        path_line(console, f"best: trial {best['trial']}, {result.metric} {_fmt(best['value'])}, test accuracy "
                           f"{_fmt(best['test_accuracy'])} -> {best['run_dir']}")
        if best.get("origin"):
            console.print("the best trial runs the defaults: no searched value beat what datakit train would "
                          "choose for them", highlight=False)
    # only what is there: a sweep whose every trial failed has no best.json (and maybe no trials/)
    written = [name for name in ("results.csv", "results.parquet", "best.json", "sweep.png", "trials/")
               if (result.output / name.rstrip("/")).exists()]
    path_line(console, f"wrote {result.output}/: {', '.join(written)}")
