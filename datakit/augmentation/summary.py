"""Rich tables for ``datakit augment`` results (kept out of the CLI so it stays thin)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from datakit.console import shown

MAX_LISTED = 20


def augment_summary(console: Console, result: Any) -> None:
    if result.preview is not None:
        console.print(f"preview: {result.preview.path} ({result.preview.sources} images x "
                      f"{result.preview.versions} versions)", highlight=False)
    table = Table(title=f"{result.counted} per class in split '{result.split}' ({result.mode}"
                        + (f", target {result.target}" if result.target is not None else "") + ")")
    table.add_column("class")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    if result.target is not None:
        table.add_column("vs target", justify="right")
    for name, before in result.before.items():
        after = result.after.get(name, before)
        cells = [shown(name), str(before), str(after)]
        if result.target is not None:
            cells.append(f"{after - result.target:+d}")
        table.add_row(*cells)
    console.print(table)
    if result.objects:
        fates = ", ".join(f"{n} {k}" for k, n in sorted(result.objects.items()))
        console.print(f"objects of the parents in the derived images: {fates}", highlight=False)
        for reason, n in sorted(result.dropped_reasons.items()):
            console.print(f"  dropped {n}: {shown(reason)}", highlight=False)
    for note in result.notes:
        console.print(f"[cyan]note:[/] {shown(note)}", highlight=False)
    if result.skipped:
        _listed(console, f"skipped source images, not augmented ({len(result.skipped)})", result.skipped, "bold yellow")
    console.print(f"wrote {result.derived} derived + {result.carried} carried images to {result.output} "
                  f"(pipeline {result.source}, {result.pipeline[:12]}) in {result.seconds:.1f}s", highlight=False)


def verify_summary(console: Console, result: Any) -> None:
    console.print(f"checked {result.checked} derived images: {result.ok} identical", highlight=False)
    for title, rows, style in (("corrupt (bytes differ, same library versions)", result.corrupt, "bold red"),
                               ("version mismatch (bytes differ, made with other library versions)",
                                result.version_mismatch, "bold yellow"),
                               ("missing", result.missing, "bold red"),
                               ("objects differ (annotations edited since augmentation)", result.objects_differ,
                                "bold red"),
                               ("parent changed or gone", result.parent_changed, "bold red")):
        if rows:
            _listed(console, f"{title} ({len(rows)})", rows, style)
    console.print("[bold green]verified[/]" if result.passed else "[bold red]verification failed[/]")


def _listed(console: Console, title: str, rows: list[dict[str, str]], style: str) -> None:
    """The first rows of a list of {path, reason} as a table; --json has them all."""
    table = Table(title=title, title_style=style)
    table.add_column("path", overflow="fold")
    table.add_column("reason", overflow="fold")
    for row in rows[:MAX_LISTED]:
        table.add_row(shown(row["path"]), shown(row["reason"]))
    if len(rows) > MAX_LISTED:
        table.caption = f"... and {len(rows) - MAX_LISTED} more (--json lists all)"
    console.print(table)


def preview_summary(console: Console, result: Any) -> None:
    console.print(f"preview: {result.path} ({result.sources} images x {result.versions} versions)", highlight=False)


def presets_table(console: Console) -> None:
    from datakit.augmentation.presets import catalogue

    listed = catalogue()
    table = Table(title="augmentation presets")
    table.add_column("preset")
    table.add_column("transforms", overflow="fold")
    table.add_column("assumes", overflow="fold")
    for preset in listed["presets"]:
        table.add_row(preset["name"], preset["transforms"], preset["assumes"])
    console.print(table)
    orient = Table(title="orientation (--orientation, or medium:fixed)")
    orient.add_column("orientation")
    orient.add_column("assumes", overflow="fold")
    for orientation in listed["orientations"]:
        orient.add_row(orientation["name"], orientation["assumes"])
    console.print(orient)
