"""Rich tables for results the commands return (kept out of the CLI so it stays thin)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datakit.console import shown

MAX_LISTED = 20


def titled(title: str, **options: Any) -> Table:
    """A table at least as wide as its title, so a title wraps only when the terminal is narrower
    than it, never mid-word inside a narrow table. Paths go on their own lines (``path_line``),
    not in titles: a path longer than the terminal would be folded mid-name."""
    return Table(title=title, min_width=len(title) + 2, **options)


def path_line(console: Console, text: str) -> None:
    """A line that names a path: never cut or folded by rich (the terminal wraps it, whole)."""
    console.print(text, highlight=False, soft_wrap=True, markup=False)


def _counts_table(title: str, counts: dict[str, int], first: str) -> Table:
    table = titled(title)
    table.add_column(first)
    table.add_column("count", justify="right")
    for key, n in counts.items():
        table.add_row(shown(key), str(n))
    return table


def _listing(console: Console, title: str, rows: list[dict[str, str]], style: str) -> None:
    if not rows:
        return
    table = titled(f"{title} ({len(rows)})", title_style=style)
    table.add_column("path", overflow="fold")
    if "status" in rows[0]:
        table.add_column("status")
    table.add_column("reason", overflow="fold")
    for row in rows[:MAX_LISTED]:
        cells = [row["path"]] + ([row["status"]] if "status" in row else []) + [row["reason"] or ""]
        table.add_row(*map(shown, cells))
    if len(rows) > MAX_LISTED:
        table.caption = f"... and {len(rows) - MAX_LISTED} more (--json lists all)"
    console.print(table)


def sample_summary(console: Console, result: Any) -> None:
    console.print(_counts_table(f"sample {result.name}: {result.images} images", result.classes, "class"))
    path_line(console, f"images in {result.image_folder}")


def ingest_summary(console: Console, result: Any) -> None:
    """Any ingest's result: counts, broken and skipped files; objects and the reader's report for a format."""
    _folder_summary(console, result)
    if getattr(result, "from_format", False):
        if result.annotation_counts:
            console.print(_counts_table(f"{result.annotations} objects ({result.format})", result.annotation_counts,
                                        "category"))
        format_report(console, result.report)


def _folder_summary(console: Console, result: Any) -> None:
    console.print(_counts_table(f"{result.total} images, layout '{result.layout}'", result.status_counts, "status"))
    if result.label_counts:
        console.print(_counts_table("usable images per label", result.label_counts, "label"))
    _listing(console, "broken files (kept in the manifest with their status)", result.broken, "bold red")
    _listing(console, "skipped or refused", result.skipped, "bold yellow")
    _listing(console, "kept without a label or split", getattr(result, "kept_unlabeled", []), "yellow")
    if result.new or result.changed or result.deleted or result.unchanged:
        console.print(
            f"incremental: {len(result.new)} new, {len(result.changed)} changed, "
            f"{len(result.deleted)} deleted, {result.unchanged} unchanged"
        )
        for path in result.deleted[:MAX_LISTED]:
            console.print(f"  deleted: {shown(path)}", highlight=False)
    dropped = getattr(result, "categories_dropped", [])
    if dropped:
        names = ", ".join(f"{shown(c['name'])} (id {c['id']})" for c in dropped)
        console.print(f"categories dropped, no longer in the source: {names}", highlight=False)
    path_line(console, f"wrote {result.manifest_path} in {result.seconds:.1f}s")


def info_tables(console: Console, data: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(str(data['manifest']))}[/]  schema v{data['schema_version']}  tasks: "
                  f"{', '.join(data['tasks']) or '-'}  images: {data['images']} ({data['ok_images']} ok)  "
                  f"annotations: {data['annotations']}", highlight=False, soft_wrap=True)  # the path whole
    splits = sorted({s for per in data["label_by_split"].values() for s in per})
    table = titled("usable images per label and split")
    table.add_column("label")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for label, per in data["label_by_split"].items():
        table.add_row(shown(label), *[str(per.get(s, 0)) for s in splits], str(sum(per.values())))
    console.print(table)
    console.print(_counts_table("status", data["status"], "status"))
    console.print(_counts_table("formats", data["formats"], "format"))
    if data["annotations_per_category"]:
        console.print(_counts_table("annotations per category", data["annotations_per_category"], "category"))
    if data["width"]:
        w, h = data["width"], data["height"]
        console.print(f"width  min {w['min']:.0f}  median {w['median']:.0f}  max {w['max']:.0f}\n"
                      f"height min {h['min']:.0f}  median {h['median']:.0f}  max {h['max']:.0f}\n"
                      f"total size {data['total_bytes'] / 1e6:.1f} MB", highlight=False)


# ---------------------------------------------------------------------------------------------
# annotation formats (ingest --format, export, convert)


def pipeline_done(console: Console, result: Any) -> None:
    """The end of `datakit run`: a rule, then where the outputs are, the path never cut."""
    console.rule(f"pipeline '{result.name}' done in {result.seconds:.1f}s (seed {result.seed})")
    path_line(console, f"outputs in {result.output}/")


def format_report(console: Console, report: Any) -> None:
    """What a format reader or writer changed, remapped or could not represent (skips are listed
    by the caller's summary or here when there is none)."""
    _listing(console, "changed (clipped boxes, merged entries, ...)", report.changed, "bold yellow")
    if report.remapped:
        table = titled(f"category ids remapped ({len(report.remapped)})", title_style="bold yellow")
        for column in ("category", "from", "to", "where"):
            table.add_column(column)
        for row in report.remapped[:MAX_LISTED]:
            table.add_row(shown(row["category"]), "-" if row["from"] is None else str(row["from"]), str(row["to"]),
                          shown(row["where"]))
        console.print(table)
    _listing(console, "not representable in the target format", report.lossy, "bold yellow")


def export_summary(console: Console, result: Any, read_report: Any = None) -> None:
    if read_report is not None:
        _listing(console, "skipped while reading", read_report.skipped, "bold yellow")
        format_report(console, read_report)
    _listing(console, "skipped while writing", result.report.skipped, "bold yellow")
    format_report(console, result.report)
    path_line(console, f"wrote {result.format}: {result.images} images, {result.annotations} objects, "
                       f"{result.files} files in {result.output}")


def split_summary(console: Console, result: Any) -> None:
    """Images and share per class and split, the worst deviation from the ratios, and every move."""
    ratios = result.ratios
    where = "updated in place" if result.in_place else "written"
    table = Table(title=f"split {shown(result.manifest)} ({where}; seed {result.seed}; ratios "
                        + ", ".join(f"{s} {ratios[s]:g}" for s in ratios) + ")")
    table.add_column("class")
    for name in ratios:
        table.add_column(name, justify="right")
    shares = result.shares()
    for name, row in result.by_class.items():
        table.add_row(shown(name), *[f"{row[s]} ({shares[name][s] * 100:.1f}%)" for s in ratios])
    total = sum(result.counts.values())
    table.add_row("[bold]all[/]", *[f"{result.counts[s]} ({result.counts[s] / max(total, 1) * 100:.1f}%)"
                                     for s in ratios])
    console.print(table)
    if result.objects_by_class:
        objects = Table(title="objects per category and split")
        objects.add_column("category")
        for name in ratios:
            objects.add_column(name, justify="right")
        for name, row in result.objects_by_class.items():
            total = max(sum(row.values()), 1)
            objects.add_row(shown(name), *[f"{row[s]} ({row[s] / total * 100:.1f}%)" for s in ratios])
        console.print(objects)
    worst = f" ({result.worst[0]}, {result.worst[1]})" if result.worst else ""
    console.print(f"worst class deviation from the ratios: {result.worst_deviation_pp:.1f} pp{worst}; "
                  f"{result.kept} images kept their split, {result.assigned} were assigned; "
                  + (f"{result.grouped_images} images that share content, lineage or a group were kept together"
                     if result.grouped_images else "no two images share content, lineage or a group")
                  + (f"; {result.unused} unusable rows left unsplit" if result.unused else ""), highlight=False)
    if result.discarded:
        console.print(f"--reset: {result.discarded} earlier assignments were discarded", highlight=False)
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}", highlight=False, soft_wrap=True)
    if result.empty:
        console.print(f"[yellow]note:[/] {' and '.join(result.empty)} got no image: "
                      f"{sum(result.counts.values())} images are too few for these ratios (groups share a split); "
                      "add images or change --ratios", highlight=False, soft_wrap=True)
    for move in result.moves[:50]:
        console.print(f"[yellow]moved[/] {shown(move['id'])}: {move['from']} -> {move['to']} ({shown(move['reason'])})",
                      highlight=False, soft_wrap=True)
    if len(result.moves) > 50:
        console.print(f"... and {len(result.moves) - 50} more moves (--json lists all)")
