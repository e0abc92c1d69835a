"""Rich output for train, eval and predict results (kept out of the CLI so it stays thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.render import path_line, titled

MAX_ROWS = 50


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def train_summary(console: Console, result: Any) -> None:
    status = {"completed": "completed", "early_stopped": "stopped early"}.get(result.status, result.status)
    table = titled(f"run {Path(result.run_dir).name}: {status} after {result.epochs_run} epochs in {result.seconds:.1f}s")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("task", f"{result.task} ({result.task_reason})" if result.task_reason else result.task)
    table.add_row(f"best {result.monitor}", f"{_fmt(result.best_metric)} (epoch {result.best_epoch})")
    names = [k.removeprefix("val_") for k in (result.history[-1] if result.history else {}) if k.startswith("val_")
             and k != "val_loss"]
    if result.history:
        last = result.history[-1]
        for name in names:
            table.add_row(f"last train {name.replace('_', ' ')}", _fmt(last[f"train_{name}"]))
            table.add_row(f"last val {name.replace('_', ' ')}", _fmt(last[f"val_{name}"]))
    if result.test_metrics:
        for name in names:
            table.add_row(f"test {name.replace('_', ' ')} (best checkpoint)", _fmt(result.test_metrics.get(name)))
    else:
        table.add_row("test (best checkpoint)", "- (no test split)")
    console.print(table)
    for problem in getattr(result, "warnings", None) or []:
        epochs = problem["epochs"]
        span = f"epoch {epochs[0]}" if len(epochs) == 1 else f"{len(epochs)} epochs, {epochs[0]}-{epochs[-1]}"
        if problem.get("gone_from"):
            console.print(f"[yellow]not learning early on ({span}), gone from epoch {problem['gone_from']}:[/] "
                          f"{shown(problem['message'])}", highlight=False, soft_wrap=True)
        else:
            console.print(f"[bold yellow]not learning ({span}):[/] {shown(problem['message'])}", highlight=False,
                          soft_wrap=True)
    path_line(console, f"wrote {result.run_dir}/: config.yaml, metrics.csv, curves.png, splits.csv, "
                       f"checkpoints/best.pt, checkpoints/last.pt")


def derived_table(derivation: Any) -> Table:
    """What the data-aware defaults chose for keys the user did not set, and why."""
    stats = derivation.stats
    title = "defaults derived from the data"
    if stats is not None:
        title += (f" ({stats.images} images, {stats.train_images} for training, {stats.classes} classes, "
                  f"{stats.channels} channel{'s' if stats.channels > 1 else ''})")
    table = Table(title=title, title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value")
    table.add_column("why")
    for d in derivation.derived:
        table.add_row(d.key, shown(d.value), shown(d.reason))
    table.caption = "keys you set are never derived; set any of these with --set KEY=VALUE"
    return table


def config_keys(console: Console, rows: list[tuple[str, Any, str, str]]) -> None:
    table = titled("config keys (set in YAML, with --set KEY=VALUE, or as datakit.train(**{KEY: VALUE}))")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("type")
    table.add_column("meaning")
    from rich.markup import escape

    for key, default, kind, help_text in rows:  # "[height, width]" is text, not rich markup
        table.add_row(*(escape(text) for text in (key, repr(default), kind, help_text)))
    console.print(table)


def eval_tables(console: Console, metrics: dict[str, Any]) -> None:
    if metrics.get("run_source"):
        console.print(f"using {metrics['run_source']}", highlight=False, soft_wrap=True)
    if metrics.get("task") in ("localization", "detection", "semantic_segmentation",
                               "instance_segmentation"):  # datakit.metrics' display
        from datakit.metrics import display

        return display.show(console, metrics)
    head = (f"[bold]{metrics['split']}[/] split ({metrics['split_source']}): {metrics['images']} images, "
            f"accuracy [bold]{metrics['accuracy']:.4f}[/], {metrics['misclassified']} misclassified")
    if metrics.get("roc_auc") is not None:
        head += f", ROC-AUC {metrics['roc_auc']:.4f} ({metrics['roc_auc_note']})"
    console.print(head, highlight=False)
    skipped = metrics.get("skipped") or []
    if skipped:
        console.print(f"[yellow]skipped:[/] {len(skipped)} image(s) could not be decoded and are not scored "
                      f"(first: {skipped[0]['reason']})", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(shown(name), _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]), str(row["support"]))
    for average in ("macro", "weighted"):
        row = metrics[average]
        table.add_row(f"[italic]{average} avg[/]", _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]),
                      str(metrics["images"]), style="dim" if average == "weighted" else None)
    console.print(table)
    if metrics.get("macro_note"):
        console.print(f"[dim]macro avg: {shown(metrics['macro_note'])}[/]", highlight=False, soft_wrap=True)
    classes = metrics["classes"]
    if len(classes) <= 12:
        matrix = titled("confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        for name in classes:
            matrix.add_column(name, justify="right")
        for name, row in zip(classes, metrics["confusion_matrix"]):
            matrix.add_row(shown(name), *[str(v) for v in row])
        console.print(matrix)
    path_line(console, f"wrote {', '.join(metrics['files'].values())}")


def predictions_table(console: Console, table: pd.DataFrame) -> None:
    if "score" in table.columns:
        return box_predictions_table(console, table)
    if "mask" in table.columns:
        return mask_predictions_table(console, table)
    out = titled(f"{len(table)} images")
    out.add_column("path", overflow="fold")
    out.add_column("class")
    out.add_column("probability", justify="right")
    for row in table.head(MAX_ROWS).itertuples(index=False):
        if pd.isna(row.label):
            out.add_row(shown(row.path), "[red]error[/]", shown(row.error))
        else:
            out.add_row(shown(row.path), shown(row.label), f"{row.probability:.4f}")
    if len(table) > MAX_ROWS:
        out.caption = f"... and {len(table) - MAX_ROWS} more (--csv FILE writes all)"
    console.print(out)


def box_predictions_table(console: Console, table: pd.DataFrame) -> None:
    """Localization/detection predictions: one row per box (x, y, w, h in the image's pixels)."""
    images = table["path"].nunique()
    boxes = int(table["label"].notna().sum())
    out = titled(f"{boxes} boxes in {images} images")
    for name in ("path", "class", "score", "x", "y", "w", "h"):
        out.add_column(name, overflow="fold" if name == "path" else "ellipsis", justify="left" if name in (
            "path", "class") else "right")
    for row in table.head(MAX_ROWS).itertuples(index=False):
        if pd.notna(row.error):
            out.add_row(shown(row.path), "[red]error[/]", shown(row.error), "", "", "", "")
        elif pd.isna(row.label):
            out.add_row(shown(row.path), "[dim]none[/]", "", "", "", "", "")
        else:
            out.add_row(shown(row.path), shown(row.label), f"{row.score:.3f}",
                        *(f"{getattr(row, k):.1f}" for k in ("x", "y", "w", "h")))
    if len(table) > MAX_ROWS:
        out.caption = f"... and {len(table) - MAX_ROWS} more (--csv FILE writes all)"
    console.print(out)


def mask_predictions_table(console: Console, table: pd.DataFrame) -> None:
    """Semantic segmentation predictions: one row per image, the classes found and their pixel shares."""
    out = titled(f"{len(table)} images")
    for name in ("path", "classes (share of pixels)", "mask"):
        out.add_column(name, overflow="fold")
    for row in table.head(MAX_ROWS).itertuples(index=False):
        if pd.notna(row.error):
            out.add_row(shown(row.path), "[red]error[/]", shown(row.error))
        else:
            out.add_row(shown(row.path), shown(row.classes) or "[dim]background only[/]",
                        "" if pd.isna(row.mask) else str(row.mask))
    if len(table) > MAX_ROWS:
        out.caption = f"... and {len(table) - MAX_ROWS} more (--csv FILE writes all)"
    console.print(out)
