"""A validated, pandas-free read of some columns of a Parquet manifest (for `datakit info`).

Importing pandas costs more CPU than everything else `datakit info` does on a small manifest, so
info reads its columns with pyarrow alone. It does not lower the bar: the columns' types and every
rule of ``datakit.manifest.validate`` are checked here, vectorized. This module only decides
"plainly valid" and never words an error: where anything is not (a CSV or JSONL table, a column
of a type pandas would have to cast, a path that may leave the root, a broken rule, a file pyarrow
cannot read), ``read_tables`` returns None and the caller loads the manifest with
``load_manifest``, which casts what it can and otherwise says exactly what is wrong (file, row,
column, value). tests/test_samples_and_info.py holds the two reads to the same verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from datakit.manifest_header import (
    _UNSAFE_PATH,
    ANNOTATION_COLUMNS,
    ANNOTATION_REQUIRED_NON_NULL,
    IMAGE_COLUMNS,
    IMAGE_REQUIRED_NON_NULL,
    SEGMENTATION_KINDS,
    SPLITS,
    STATUSES,
    Header,
)
from datakit.parquet_files import open_parquet

_ARROW_TYPES = {"string": pa.string(), "Int64": pa.int64(), "float64": pa.float64()}

# the columns the rules below need, besides those the caller asks for
_IMAGE_RULE_COLUMNS = ("id", "path", "status", "split", "label", "semantic_mask")
_ANNOTATION_RULE_COLUMNS = ("id", "image_id", "category", "segmentation_kind")


def _castable(arrow_type: pa.DataType, dtype: str) -> bool:
    """Whether pandas' cast of this Parquet type to the schema's dtype can never fail or round."""
    if pa.types.is_null(arrow_type):
        return True
    if dtype == "string":
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if dtype == "Int64":
        return pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()
    return pa.types.is_floating(arrow_type) or (pa.types.is_integer(arrow_type) and arrow_type != pa.uint64())


def normalized(table: pa.Table, columns: Iterable[str], schema: dict[str, str]) -> pa.Table:
    """The named columns cast to the schema's types; a column the table lacks is all null."""
    arrays = []
    names = list(dict.fromkeys(columns))
    for name in names:
        arrow_type = _ARROW_TYPES[schema[name]]
        if name in table.column_names:
            arrays.append(table[name].cast(arrow_type))
        else:
            arrays.append(pa.nulls(len(table), arrow_type))
    return pa.table(arrays, names=names)


def _read(path: Path, wanted: Iterable[str], schema: dict[str, str]) -> pa.Table | None:
    try:
        parquet = open_parquet(path)
        types = dict(zip(parquet.schema_arrow.names, parquet.schema_arrow.types))
        # every known column's type, read or not: pandas would cast (or refuse) each one
        if any(name in types and not _castable(types[name], dtype) for name, dtype in schema.items()):
            return None
        present = [name for name in dict.fromkeys(wanted) if name in types]
        return normalized(parquet.read(columns=present), wanted, schema)
    except (OSError, pa.ArrowException, ValueError):
        return None  # load_manifest names what is wrong with the file


def _distinct(column: pa.ChunkedArray) -> set[Any]:
    return set(pc.unique(column.drop_null()).to_pylist())


def _plainly_valid(images: pa.Table, annotations: pa.Table, category_names: set[str]) -> bool:
    """Every rule of datakit.manifest.validate, as one yes/no."""
    for table, required in ((images, IMAGE_REQUIRED_NON_NULL), (annotations, ANNOTATION_REQUIRED_NON_NULL)):
        if any(table[name].null_count for name in required):
            return False
    for table, name in ((images, "id"), (images, "path"), (annotations, "id")):
        if pc.count_distinct(table[name]).as_py() != len(table):
            return False
    allowed = ((images, "status", set(STATUSES)), (images, "split", set(SPLITS)),
               (annotations, "category", category_names), (annotations, "segmentation_kind", set(SEGMENTATION_KINDS)))
    if any(not _distinct(table[name]) <= values for table, name, values in allowed):
        return False
    if category_names:
        if not _distinct(images["label"]) <= category_names:
            return False
    elif images["label"].null_count != len(images):
        return False
    for name in ("path", "semantic_mask"):
        if pc.any(pc.match_substring_regex(images[name], _UNSAFE_PATH)).as_py():
            return False  # possibly absolute or leaving the root: load_manifest checks row by row
    return _distinct(annotations["image_id"]) <= _distinct(images["id"])


def read_tables(head: Header, image_columns: Iterable[str],
                annotation_columns: Iterable[str]) -> tuple[pa.Table, pa.Table] | None:
    """The images and annotations columns asked for (plus those the rules need), validated; None
    when the manifest is not Parquet or not plainly valid (then use ``load_manifest``)."""
    wanted_images = [*_IMAGE_RULE_COLUMNS, *image_columns]
    wanted_annotations = [*_ANNOTATION_RULE_COLUMNS, *annotation_columns]
    paths = [p for p in head.tables.values() if p is not None]
    if any(p.suffix != ".parquet" for p in paths):
        return None
    images = _read(head.tables["images"], wanted_images, IMAGE_COLUMNS)  # type: ignore[arg-type]
    if head.tables["annotations"] is None:
        annotations = normalized(pa.table({}), wanted_annotations, ANNOTATION_COLUMNS)
    else:
        annotations = _read(head.tables["annotations"], wanted_annotations, ANNOTATION_COLUMNS)
    if images is None or annotations is None:
        return None
    names = {c["name"] for c in head.data.get("categories", [])}
    if not _plainly_valid(images, annotations, names):
        return None
    return images, annotations
