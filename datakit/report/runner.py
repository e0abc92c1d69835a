"""Run every section of the balance report, check ``--fail-on``, write the HTML page."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from datakit.atomic import write_text
from datakit.console import shown
from datakit.errors import DatakitError
from datakit.manifest import load_manifest, resolve_location
from datakit.manifest_header import check_output_file
from datakit.report import SECTIONS
from datakit.report import fail_on as checks
from datakit.report import html as html_page
from datakit.report.base import ReportContext, recheck_since_ingest


@dataclass
class Report:
    """Every section's data, the ``--fail-on`` metrics, and which conditions were crossed."""

    manifest: Path
    sections: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    failed: list[str] = field(default_factory=list)
    html: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "metrics": {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in self.metrics.items()},
            "failed": self.failed,
            "html": str(self.html) if self.html else None,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "sections": self.sections,
        }

    def render(self, console: Console) -> None:
        for name, data in self.sections.items():
            SECTIONS[name].render(console, data)
            console.print()
        for note in self.notes:
            console.print(f"[dim]note: {shown(note)}[/]", highlight=False)
        if self.html:
            console.print(f"wrote {self.html}", highlight=False)
        for line in self.failed:
            console.print(f"[bold red]check failed:[/] {shown(line)}", highlight=False)

    def to_html(self) -> str:
        frags = [(name, SECTIONS[name].title, SECTIONS[name].html(data)) for name, data in self.sections.items()]
        subtitle = (f"{self.manifest} · made by datakit balance-report in {self.seconds:.1f}s"
                    + ("".join(f" · {n}" for n in self.notes)))
        return html_page.page("Data set report", subtitle, frags, self.failed)


def balance_report(
    manifest: str | os.PathLike[str],
    html: str | os.PathLike[str] | None = None,
    fail_on: list[str] | tuple[str, ...] | None = None,
    sample: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    cache: bool = True,
    sections: list[str] | tuple[str, ...] | None = None,
    show_progress: bool = True,
    allow_outside: bool | None = None,
) -> Report:
    """Balance, variance, shortcuts, duplicates, leakage and box statistics of a manifest.

    ``fail_on`` expressions are checked (a malformed one raises before any work); crossed ones
    are listed in ``Report.failed`` (the CLI then exits 1). ``sample`` reads the pixels of at
    most that many images (counts always cover the whole set). Pixel statistics are cached by
    content hash beside the manifest (or in the user cache folder) unless ``cache`` is False.
    ``allow_outside`` trusts an image root outside the data set (as ``--allow-outside``).
    """
    start = time.perf_counter()
    conditions = _parse(fail_on)
    if sample is not None and sample < 1:
        raise DatakitError(f"--sample must be at least 1, got {sample}")
    if workers is not None and workers < 0:
        raise DatakitError(f"--workers must be 0 (all cores) or more, got {workers}")
    wanted = list(sections) if sections else list(SECTIONS)
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise DatakitError(f"unknown report section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    location = resolve_location(manifest)
    m = load_manifest(location, allow_outside=allow_outside)
    if html is not None:
        check_output_file(html, "--html", m)
    changed = recheck_since_ingest(m, workers=workers or None, show_progress=show_progress)
    ctx = ReportContext(m, Path(manifest), workers=workers or None, sample=sample, seed=seed,
                        show_progress=show_progress, cache=cache)
    for note in changed:
        ctx.note(note)
    data: dict[str, dict[str, Any]] = {}
    metrics: dict[str, float] = {}
    for name in wanted:
        section = SECTIONS[name]
        if not section.applies(ctx):
            continue
        data[name] = section.compute(ctx)
        metrics.update(section.metrics(data[name]))
    report = Report(Path(manifest), data, metrics, checks.evaluate(conditions, metrics), notes=list(ctx._notes))
    report.seconds = time.perf_counter() - start
    if html is not None:
        report.html = write_text(Path(html), report.to_html())
    return report


def _parse(expressions: list[str] | tuple[str, ...] | None) -> list[checks.Condition]:
    if isinstance(expressions, str):
        expressions = [expressions]
    return checks.parse_all(expressions)
