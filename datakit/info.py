"""`datakit info`: what a manifest holds, counted per class, split, status and format."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from datakit.manifest import load_manifest


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.fillna("(none)").value_counts().sort_index().items()}


def _stats(series: pd.Series) -> dict[str, float] | None:
    values = series.dropna()
    if values.empty:
        return None
    return {"min": float(values.min()), "median": float(values.median()), "max": float(values.max())}


def info(manifest: str | os.PathLike[str], allow_outside: bool | None = None) -> dict[str, Any]:
    """Counts and size statistics of a manifest, as a plain dict (the CLI renders it)."""
    m = load_manifest(manifest, allow_outside=allow_outside)
    images, ok = m.images, m.ok_images()
    split_by_label = (
        ok.assign(label=ok["label"].fillna("(none)"), split=ok["split"].fillna("(none)"))
        .groupby(["label", "split"]).size()
    )
    per_class_split: dict[str, dict[str, int]] = {}
    for (label, split), n in split_by_label.items():
        per_class_split.setdefault(str(label), {})[str(split)] = int(n)
    return {
        "manifest": str(m.location),
        "schema_version": m.schema_version,
        "tasks": m.tasks,
        "categories": m.categories,
        "images": int(len(images)),
        "ok_images": int(len(ok)),
        "annotations": int(len(m.annotations)),
        "status": _counts(images["status"]),
        "labels": _counts(ok["label"]),
        "splits": _counts(ok["split"]),
        "label_by_split": per_class_split,
        "formats": _counts(ok["format"]),
        "modes": _counts(ok["mode"]),
        "width": _stats(ok["width"]),
        "height": _stats(ok["height"]),
        "total_bytes": int(images["file_size"].fillna(0).sum()),
        "annotations_per_category": _counts(m.annotations["category"]) if len(m.annotations) else {},
    }
