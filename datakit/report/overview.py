"""Overview: how many images, classes and splits, and which files cannot be used and why."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from datakit.console import shown
from datakit.report import html
from datakit.report.base import ReportContext, Section

MAX_LISTED = 20


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.fillna("(none)").value_counts().sort_index().items()}


class Overview(Section):
    name = "overview"
    title = "Overview"

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        images, ok = ctx.images, ctx.ok
        broken = images[images["status"] != "ok"]
        labels = ok["label"].dropna()
        return {
            "manifest": str(ctx.manifest_path),
            "tasks": list(ctx.manifest.tasks),
            "images": int(len(images)),
            "ok_images": int(len(ok)),
            "broken": int(len(broken)),
            "broken_by_status": _counts(broken["status"]),
            "broken_files": [
                {"path": str(r.path), "status": str(r.status), "reason": "" if pd.isna(r.reason) else str(r.reason)}
                for r in broken.itertuples()
            ],
            "classes": int(labels.nunique()) if len(labels) else len(ctx.manifest.categories),
            "categories": [c["name"] for c in ctx.manifest.categories],
            "splits": _counts(ok["split"]),
            "formats": _counts(ok["format"]),
            "annotations": int(len(ctx.manifest.annotations)),
            "pixel_images": int(len(ctx.pixel_rows())),
            "sampled": ctx.sample is not None and ctx.sample < len(ok),
        }

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {"broken": data["broken"]}

    def render(self, console: Console, data: dict[str, Any]) -> None:
        table = Table(title="Overview", show_header=False)
        table.add_column("what")
        table.add_column("value", overflow="fold")
        table.add_row("images", f"{data['images']} ({data['ok_images']} usable)")
        table.add_row("broken files", str(data["broken"]))
        table.add_row("classes", str(data["classes"]))
        table.add_row("splits", ", ".join(f"{k} {v}" for k, v in data["splits"].items()))
        table.add_row("formats", ", ".join(f"{k} {v}" for k, v in data["formats"].items()))
        table.add_row("tasks", ", ".join(data["tasks"]) or "-")
        table.add_row("annotations", str(data["annotations"]))
        if data["sampled"]:
            table.add_row("pixels read", f"{data['pixel_images']} sampled images (--sample)")
        console.print(table)
        rows = data["broken_files"]
        if rows:
            listing = Table(title=f"broken files ({len(rows)})", title_style="bold red")
            listing.add_column("path", overflow="fold")
            listing.add_column("status")
            listing.add_column("reason", overflow="fold")
            for row in rows[:MAX_LISTED]:
                listing.add_row(shown(row["path"]), row["status"], shown(row["reason"]))
            if len(rows) > MAX_LISTED:
                listing.caption = f"... and {len(rows) - MAX_LISTED} more (--json lists all)"
            console.print(listing)

    def html(self, data: dict[str, Any]) -> str:
        rows = [
            ("images", data["images"]), ("usable", data["ok_images"]), ("broken files", data["broken"]),
            ("classes", data["classes"]),
            ("splits", ", ".join(f"{k} {v}" for k, v in data["splits"].items())),
            ("formats", ", ".join(f"{k} {v}" for k, v in data["formats"].items())),
            ("annotations", data["annotations"]),
        ]
        if data["sampled"]:
            rows.append(("pixels read", f"{data['pixel_images']} sampled images"))
        out = html.table(["", ""], rows)
        if data["broken_files"]:
            out += "<h3>Broken files</h3>" + html.table(
                ["path", "status", "reason"],
                [(r["path"], r["status"], r["reason"]) for r in data["broken_files"][:200]])
        return out


SECTION = Overview()
