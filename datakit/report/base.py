"""What a report section is, and the context every section reads from.

A section is one module with one ``Section`` subclass: it computes a JSON-able dict from the
context, names the ``--fail-on`` metrics it publishes, and renders that dict as rich tables and
as an HTML fragment. Adding a section is one module plus one entry in ``SECTIONS``.
"""

from __future__ import annotations

import os
import stat
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
        """The ok images whose pixels are read: all of them, or a seeded sample (``--sample N``) plus
        every image whose content hash another image shares: exact duplicates, label conflicts and
        leakage come from hashes, and a sample that missed a copy made ``--fail-on conflicts>0`` pass."""
        ok = self.ok
        if self.sample is not None and self.sample < len(ok):
            sampled = ok.sample(n=self.sample, random_state=self.seed)
            shared = ok["sha256"].notna() & ok["sha256"].duplicated(keep=False)
            return ok[ok.index.isin(sampled.index) | shared.to_numpy()].sort_index()
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


def recheck_since_ingest(manifest: Manifest, workers: int | None = None, show_progress: bool = False) -> list[str]:
    """Rows ingested as usable whose file is gone, unreadable or damaged now become broken ('missing',
    'unreadable', 'truncated', ..., "... since ingest"), in this in-memory manifest only; the notes
    to show say how many files changed.

    Ingest judged the files once; a report that trusted that judgement counted deleted images as
    usable, read their pixel statistics from the cache and let ``--fail-on broken>0`` pass. A file
    whose size or modification time differs from ingest's is inspected again (hashed and checked
    as ingest checks it): damaged, it is broken; intact but edited, its facts (hash, size) are
    taken from the file, so the pixel cache, keyed by hash, never files the new pixels under the
    old hash.
    """
    images = manifest.images
    ok = images.index[images["status"] == "ok"]
    problems: dict[Any, tuple[str, str]] = {}
    changed: dict[Any, str] = {}
    recorded = [images.loc[ok, c] if c in images.columns else pd.Series(pd.NA, index=ok) for c in ("file_size", "mtime_ns")]
    for i, p, size, mtime in zip(ok, images.loc[ok, "path"].astype(str), *recorded):
        path = manifest.image_path(p)
        problem, differs = _file_now(path, size, mtime)
        if problem is not None:
            problems[i] = problem
        elif differs:
            changed[i] = str(path)
    fresh = _inspect_again(changed, workers, show_progress)
    edited = 0
    for i, facts in fresh.items():
        if facts["status"] != "ok":
            problems[i] = (facts["status"], f"{facts['reason']} (changed since ingest)")
        elif facts.get("sha256") != images.at[i, "sha256"]:
            edited += 1
    if not problems and not fresh:
        return []
    images = images.copy()
    for i, facts in fresh.items():
        if facts["status"] == "ok":
            for column in ("sha256", "file_size", "width", "height", "format", "channels", "mode", "bit_depth"):
                if column in images.columns and facts.get(column) is not None:
                    images.at[i, column] = facts[column]
    if problems:
        rows = list(problems)
        images.loc[rows, "status"] = [status for status, _ in problems.values()]
        images.loc[rows, "reason"] = [reason for _, reason in problems.values()]
    manifest.images = images
    damaged = sum(1 for facts in fresh.values() if facts["status"] != "ok")
    notes = []
    if edited or damaged:
        notes.append(f"{edited + damaged} file(s) changed since ingest ({damaged} now broken); the report reads "
                     "them as they are now: ingest again to update the manifest")
    return notes


def _file_now(path: Path, size: Any, mtime: Any) -> tuple[tuple[str, str] | None, bool]:
    """((status, reason) when the file cannot be read now, else None; whether its size or
    modification time differs from what ingest recorded, where it recorded them)."""
    try:
        now = path.stat()
    except OSError:
        return ("missing", "missing since ingest"), False
    if not stat.S_ISREG(now.st_mode):
        from datakit.regular_files import special_file_kind

        return ("unreadable", f"a {special_file_kind(now.st_mode)} since ingest, not an image file"), False
    if not os.access(path, os.R_OK):
        return ("unreadable", "no longer readable since ingest (permission denied)"), False
    if size is None or pd.isna(size):
        return None, False
    differs = now.st_size != int(size) or (mtime is not None and not pd.isna(mtime) and now.st_mtime_ns != int(mtime))
    return None, differs


def _inspect_again(paths: dict[Any, str], workers: int | None, show_progress: bool) -> dict[Any, dict[str, Any]]:
    """Ingest's own check (``imageinfo.inspect_file``) of each changed file, by row."""
    if not paths:
        return {}
    from datakit.imageinfo import inspect_file
    from datakit.parallel import imap_progress

    rows = list(paths)
    results = imap_progress(inspect_file, [paths[i] for i in rows], workers or os.cpu_count() or 1,
                            "Files changed since ingest", show_progress)
    return dict(zip(rows, results))


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
