"""What a report section is, and the context every section reads from.

A section is one module with one ``Section`` subclass: it computes a JSON-able dict from the
context, names the ``--fail-on`` metrics it publishes, and renders that dict as rich tables and
as an HTML fragment. Adding a section is one module plus one entry in ``SECTIONS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from datakit.manifest import Manifest


@dataclass
class ReportContext:
    """The manifest plus the expensive, shared results, each computed once on first use."""

    manifest: Manifest
    manifest_path: Path
    workers: int | None = None
    sample: int | None = None
    seed: int = 0
    show_progress: bool = True
    cache: bool = True
    _stats: pd.DataFrame | None = field(default=None, repr=False)
    _duplicates: Any = field(default=None, repr=False)
    _notes: list[str] = field(default_factory=list, repr=False)

    @property
    def images(self) -> pd.DataFrame:
        return self.manifest.images

    @property
    def ok(self) -> pd.DataFrame:
        return self.manifest.ok_images()

    def pixel_rows(self) -> pd.DataFrame:
        """The ok images whose pixels are read: all of them, or a seeded sample (``--sample N``)."""
        ok = self.ok
        if self.sample is not None and self.sample < len(ok):
            return ok.sample(n=self.sample, random_state=self.seed).sort_index()
        return ok

    def stats(self) -> pd.DataFrame:
        """Per-image pixel statistics and perceptual hash, indexed like ``pixel_rows()``."""
        if self._stats is None:
            from datakit.report.pixels import image_statistics

            self._stats = image_statistics(self, self.pixel_rows())
        return self._stats

    def duplicates(self) -> Any:
        """Exact and near-duplicate clusters over ``pixel_rows()`` (datakit.hashing.DuplicateClusters)."""
        if self._duplicates is None:
            from datakit.hashing import find_duplicates

            rows = self.pixel_rows()
            stats = self.stats()
            content = pd.Series(rows["sha256"].to_numpy(), index=rows["id"].astype(str).to_numpy())
            where = stats.attrs.get("cache")
            near_cache = Path(where).with_name(Path(where).stem + ".near_pairs.npz") if where else None
            self._duplicates = find_duplicates(content, stats, show_progress=self.show_progress, cache=near_cache)
        return self._duplicates

    def note(self, text: str) -> None:
        self._notes.append(text)


def mark_files_gone(manifest: Manifest) -> None:
    """Rows ingested as usable whose file is gone or unreadable now become broken ('missing' or
    'unreadable', "... since ingest"), in this in-memory manifest only.

    Ingest judged the files once; a report that trusted that judgement counted deleted images as
    usable, read their pixel statistics from the cache and let ``--fail-on broken>0`` pass.
    """
    images = manifest.images
    ok = images.index[images["status"] == "ok"]
    problems = {i: _file_problem(manifest.image_path(p)) for i, p in images.loc[ok, "path"].astype(str).items()}
    gone = {i: problem for i, problem in problems.items() if problem is not None}
    if not gone:
        return
    images = images.copy()
    rows = list(gone)
    images.loc[rows, "status"] = [status for status, _ in gone.values()]
    images.loc[rows, "reason"] = [reason for _, reason in gone.values()]
    manifest.images = images


def _file_problem(path: Path) -> tuple[str, str] | None:
    """(status, reason) when the file cannot be read now, else None."""
    if not path.is_file():
        return "missing", "missing since ingest"
    if not os.access(path, os.R_OK):
        return "unreadable", "no longer readable since ingest (permission denied)"
    return None


def summary(values: pd.Series) -> dict[str, float] | None:
    """5th percentile, median, 95th percentile, mean and std of the finite values; None when there are none."""
    values = values.astype("float64").replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        return None
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"p5": float(p5), "median": float(p50), "p95": float(p95), "mean": float(values.mean()),
            "std": float(values.std(ddof=0))}


class Section:
    """One part of the report; subclasses set ``name`` and ``title`` and override what they need."""

    name = ""
    title = ""

    def applies(self, ctx: ReportContext) -> bool:
        return True

    def compute(self, ctx: ReportContext) -> dict[str, Any]:
        raise NotImplementedError

    def metrics(self, data: dict[str, Any]) -> dict[str, float]:
        return {}

    def render(self, console: Console, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def html(self, data: dict[str, Any]) -> str:
        raise NotImplementedError
