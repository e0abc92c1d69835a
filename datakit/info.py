"""`datakit info`: what a manifest holds, counted per class, split, status and format.

Counted with pyarrow on the columns it needs: a Parquet manifest is read and validated without
pandas (``datakit.manifest_arrow``), which keeps `datakit info` about as cheap as importing pandas
alone (benchmarks/startup.py). Any other manifest goes through ``load_manifest``.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datakit.manifest_arrow import normalized, read_tables
from datakit.manifest_header import ANNOTATION_COLUMNS, IMAGE_COLUMNS, Header, read_header

_IMAGE_COLUMNS = ("status", "label", "split", "format", "mode", "width", "height", "file_size")
_ANNOTATION_COLUMNS = ("category",)


# Nothing below turns a Python value into an Arrow one (pc.equal(x, "ok"), fill_null("(none)")):
# pyarrow imports pandas for that conversion, and avoiding pandas is why this module counts with
# pyarrow. Arrow scalars taken from the data, option strings and Arrow -> Python are fine.


def _counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    pairs = [("(none)" if p["values"] is None else str(p["values"]), int(p["counts"]))
             for p in pc.value_counts(column).to_pylist()]
    return dict(sorted(pairs))


def _stats(column: pa.ChunkedArray) -> dict[str, float] | None:
    if column.null_count == len(column):
        return None
    low_high = pc.min_max(column).as_py()
    # pandas' median: the mean of the two middle values for an even count (linear interpolation)
    median = pc.quantile(column, q=0.5, interpolation="linear")[0].as_py()
    return {"min": float(low_high["min"]), "median": float(median), "max": float(low_high["max"])}


def _label_by_split(ok: pa.Table) -> dict[str, dict[str, int]]:
    per_split: dict[str, dict[str, int]] = {}
    for split in pc.unique(ok["split"]):  # Arrow scalars: comparing with them converts nothing
        mask = pc.is_null(ok["split"]) if not split.is_valid else pc.equal(ok["split"], split)
        per_split["(none)" if not split.is_valid else split.as_py()] = _counts(ok["label"].filter(mask))
    per_class_split: dict[str, dict[str, int]] = {}
    for split in sorted(per_split):
        for label, n in per_split[split].items():
            per_class_split.setdefault(label, {})[split] = n
    return dict(sorted(per_class_split.items()))


def _tables(head: Header, allow_outside: bool | None) -> tuple[pa.Table, pa.Table]:
    tables = read_tables(head, _IMAGE_COLUMNS, _ANNOTATION_COLUMNS)
    if tables is not None:
        return tables
    from datakit.manifest import load_manifest  # CSV/JSONL, or a table to cast or refuse

    m = load_manifest(head.location, allow_outside=allow_outside)
    return (normalized(pa.Table.from_pandas(m.images[list(_IMAGE_COLUMNS)], preserve_index=False),
                       _IMAGE_COLUMNS, IMAGE_COLUMNS),
            normalized(pa.Table.from_pandas(m.annotations[list(_ANNOTATION_COLUMNS)], preserve_index=False),
                       _ANNOTATION_COLUMNS, ANNOTATION_COLUMNS))


def info(manifest: str | os.PathLike[str], allow_outside: bool | None = None) -> dict[str, Any]:
    """Counts and size statistics of a manifest, as a plain dict (the CLI renders it)."""
    head = read_header(manifest, allow_outside)
    images, annotations = _tables(head, allow_outside)
    ok = images.filter(pc.match_substring_regex(images["status"], "^ok$"))
    total_bytes = pc.sum(images["file_size"]).as_py() or 0
    return {
        "manifest": str(head.location.resolve()),
        "schema_version": head.data["schema_version"],
        "tasks": list(head.data.get("tasks", [])),
        "categories": head.data.get("categories", []),
        "images": int(len(images)),
        "ok_images": int(len(ok)),
        "annotations": int(len(annotations)),
        "status": _counts(images["status"]),
        "labels": _counts(ok["label"]),
        "splits": _counts(ok["split"]),
        "label_by_split": _label_by_split(ok),
        "formats": _counts(ok["format"]),
        "modes": _counts(ok["mode"]),
        "width": _stats(ok["width"]),
        "height": _stats(ok["height"]),
        "total_bytes": int(total_bytes),
        "annotations_per_category": _counts(annotations["category"]) if len(annotations) else {},
    }
