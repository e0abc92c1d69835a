"""The manifest: schema, load, save and validation.

A manifest is a directory holding ``manifest.json`` (the header) and two tables, ``images`` and
``annotations``, as Parquet (default), CSV or JSONL. The header names the table files; it is
written last and replaced atomically, so it is the commit point: a crash at any moment leaves
either the old manifest or the new one, never a mix. See docs/manifest.md for every column.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from datakit import __version__
from datakit.atomic import write_atomic, write_json
from datakit.errors import ManifestError
from datakit.parquet_files import read_parquet, write_parquet
from datakit.manifest_header import (  # noqa: F401 - re-exported: the manifest's one public surface
    _UNSAFE_PATH,
    ALLOW_OUTSIDE_ENV,
    ANNOTATION_COLUMNS,
    ANNOTATION_REQUIRED_NON_NULL,
    HEADER_NAME,
    IMAGE_COLUMNS,
    IMAGE_REQUIRED_NON_NULL,
    SCHEMA_VERSION,
    SEGMENTATION_KINDS,
    SPLITS,
    STATUSES,
    TABLE_FORMATS,
    TASKS,
    Header,
    _validate_header,
    check_image_root,
    check_relative_path,
    image_root_problem,
    manifest_exists,
    outside_allowed,
    read_header,
    resolve_location,
)


@dataclass
class Manifest:
    """A data set: header fields plus the ``images`` and ``annotations`` DataFrames."""

    images: pd.DataFrame
    annotations: pd.DataFrame = field(default_factory=lambda: empty_table(ANNOTATION_COLUMNS))
    categories: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    image_root: str = "."
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # augmentation pipelines by hash: {hash: {"pipeline": <albumentations serialized form>, ...}}
    pipelines: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # where this manifest was loaded from; relative image roots resolve against it
    location: Path | None = None
    # the user trusts an image root outside the data set (--allow-outside); never saved
    allow_outside: bool = False

    @property
    def category_names(self) -> list[str]:
        return [c["name"] for c in self.categories]

    def category_ids(self) -> dict[str, int]:
        """The one name -> id table every split and export uses."""
        return {c["name"]: int(c["id"]) for c in self.categories}

    def root(self) -> Path:
        """Absolute image root; relative roots are relative to the manifest directory."""
        root = Path(self.image_root)
        if not root.is_absolute() and self.location is not None:
            root = self.location / root
        return root

    def image_path(self, relative: str) -> Path:
        """The file of a row; a path that leaves the image root is refused (loading checks every
        row; this guards manifests built in memory). Symlinks are not resolved: an export made with
        ``--images symlink`` is read where its links are."""
        problem = check_relative_path(relative)
        if problem:
            raise ManifestError(f"image path {relative!r} {problem}; refused")
        return self.root() / relative

    def ok_images(self) -> pd.DataFrame:
        return self.images[self.images["status"] == "ok"]


def empty_table(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})


def categories_from_names(names: Iterable[str], start: int = 0) -> list[dict[str, Any]]:
    """Category list with ids in sorted-name order, so the same names always get the same ids."""
    return [{"id": start + i, "name": n} for i, n in enumerate(sorted(set(names)))]


# ---------------------------------------------------------------------------------------------
# coercion and validation


def _coerce(df: pd.DataFrame, columns: dict[str, str], file: str) -> pd.DataFrame:
    """Add missing optional columns, cast known ones; a value that does not fit names its row."""
    df = df.copy()
    for name, dtype in columns.items():
        if name not in df.columns:
            df[name] = pd.Series([pd.NA] * len(df), dtype=dtype, index=df.index)
            continue
        try:
            df[name] = _cast(df[name], dtype)
        except (ValueError, TypeError) as exc:
            row, value = _first_bad_value(df[name], dtype)
            raise ManifestError(
                f"{file}: row {row}, column '{name}': value {value!r} is not a valid {dtype} ({exc})"
            ) from None
    known = list(columns)
    extra = [c for c in df.columns if c not in columns]
    return df[known + extra].reset_index(drop=True)


def _cast(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "string":
        return series.astype("string")
    if dtype == "Int64":
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            series = pd.to_numeric(series.replace("", pd.NA), errors="raise")
        if pd.api.types.is_float_dtype(series.dtype):
            frac = series.dropna() % 1
            if (frac != 0).any():
                raise ValueError("not a whole number")
        return series.astype("Int64")
    if dtype == "float64":
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            series = pd.to_numeric(series.replace("", pd.NA), errors="raise")
        return series.astype("float64")
    raise AssertionError(dtype)


def _first_bad_value(series: pd.Series, dtype: str) -> tuple[int, Any]:
    for row, value in enumerate(series.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            continue
        try:
            _cast(pd.Series([value]), dtype)
        except (ValueError, TypeError):
            return row, value
    return -1, None


def _check_non_null(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    for name in columns:
        nulls = df[name].isna()
        if nulls.any():
            row = int(nulls.to_numpy().nonzero()[0][0])
            raise ManifestError(f"{file}: row {row}, column '{name}': value is empty but required")


def _check_unique(df: pd.DataFrame, column: str, file: str) -> None:
    dup = df[column].duplicated()
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0])
        raise ManifestError(f"{file}: row {row}, column '{column}': value {df[column].iloc[row]!r} is not unique")


def _check_allowed(df: pd.DataFrame, column: str, allowed: Iterable[str], file: str) -> None:
    allowed = set(allowed)
    values = df[column]
    bad = values.notna() & ~values.isin(allowed)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ManifestError(
            f"{file}: row {row}, column '{column}': value {values.iloc[row]!r} is not one of {sorted(allowed)}"
        )



def _check_relative_paths(paths: pd.Series, column: str, file: str) -> None:
    # vectorized first pass: a per-row Python check costs seconds on a million rows
    suspicious = paths.astype("string").str.contains(_UNSAFE_PATH, regex=True).fillna(False)
    for row in suspicious.to_numpy().nonzero()[0]:
        value = paths.iloc[row]
        problem = check_relative_path(value)
        if problem:
            raise ManifestError(f"{file}: row {row}, column '{column}': value {value!r} {problem}")


def validate(manifest: Manifest, images_file: str = "images", annotations_file: str = "annotations") -> None:
    """Raise ManifestError naming file, row, column and value for the first problem found."""
    images, annotations = manifest.images, manifest.annotations
    _check_non_null(images, IMAGE_REQUIRED_NON_NULL, images_file)
    _check_unique(images, "id", images_file)
    _check_unique(images, "path", images_file)
    _check_allowed(images, "status", STATUSES, images_file)
    _check_allowed(images, "split", SPLITS, images_file)
    for column in [c for c in ("path", "semantic_mask") if c in images.columns]:
        _check_relative_paths(images[column], column, images_file)
    names = set(manifest.category_names)
    if manifest.categories:
        _check_allowed(images, "label", names, images_file)
    elif images["label"].notna().any():
        row = int(images["label"].notna().to_numpy().nonzero()[0][0])
        raise ManifestError(
            f"{images_file}: row {row}, column 'label': value {images['label'].iloc[row]!r} "
            "but the header lists no categories"
        )
    _check_non_null(annotations, ANNOTATION_REQUIRED_NON_NULL, annotations_file)
    _check_unique(annotations, "id", annotations_file)
    _check_allowed(annotations, "category", names, annotations_file)
    _check_allowed(annotations, "segmentation_kind", SEGMENTATION_KINDS, annotations_file)
    known_images = annotations["image_id"].isin(set(images["id"].tolist()))
    if not known_images.all():
        row = int((~known_images).to_numpy().nonzero()[0][0])
        raise ManifestError(
            f"{annotations_file}: row {row}, column 'image_id': value "
            f"{annotations['image_id'].iloc[row]!r} is not an image id in {images_file}"
        )


# ---------------------------------------------------------------------------------------------
# reading


def _read_table(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    fmt = path.suffix.lstrip(".")
    try:
        if fmt == "parquet":
            return read_parquet(path)
        # read everything as text so casting is ours and errors can name the row
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if fmt == "jsonl":
            if path.stat().st_size == 0:
                return empty_table(columns)
            return pd.read_json(path, lines=True, dtype=False)
    except ManifestError:
        raise
    except Exception as exc:  # pyarrow, pandas and json raise many types for a corrupt file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ManifestError(f"{path}: cannot read {fmt} table: {first}") from None
    raise ManifestError(f"{path}: unknown table format '{fmt}' (known: {', '.join(TABLE_FORMATS)})")


def load_manifest(path: str | os.PathLike[str], validate_schema: bool = True,
                  allow_outside: bool | None = None) -> Manifest:
    """Load and validate a manifest directory (or its manifest.json).

    An ``image_root`` that leaves the data set (see ``image_root_problem``) is refused unless
    ``allow_outside`` (default: ``$DATAKIT_ALLOW_OUTSIDE``) says the user trusts it.
    """
    head = read_header(path, allow_outside)
    location, header_path, header = head.location, head.path, head.data
    frames: dict[str, pd.DataFrame] = {}
    for name, columns in (("images", IMAGE_COLUMNS), ("annotations", ANNOTATION_COLUMNS)):
        table_path = head.tables[name]
        if table_path is None:
            frames[name] = empty_table(columns)
            continue
        frames[name] = _coerce(_read_table(table_path, columns), columns, str(table_path))
    manifest = Manifest(
        images=frames["images"],
        annotations=frames["annotations"],
        categories=header.get("categories", []),
        tasks=list(header.get("tasks", [])),
        image_root=str(header.get("image_root", ".")),
        source=header.get("source", {}) or {},
        extra=header.get("extra", {}) or {},
        pipelines=header.get("pipelines", {}) or {},
        schema_version=header["schema_version"],
        location=location.resolve(),
        allow_outside=outside_allowed(allow_outside),
    )
    if validate_schema:
        validate(manifest, *head.table_names())
    return manifest


# ---------------------------------------------------------------------------------------------
# writing


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        write_parquet(df, path)
    elif fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        raise ManifestError(f"unknown table format {fmt!r} (known: {', '.join(TABLE_FORMATS)})")
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _table_name(kind: str, fmt: str, taken: set[str]) -> str:
    name = f"{kind}.{fmt}"
    while name in taken:
        name = f"{kind}-{secrets.token_hex(4)}.{fmt}"
    return name


def save_manifest(manifest: Manifest, path: str | os.PathLike[str], table_format: str = "parquet") -> Path:
    """Write atomically: new table files first, then the header replaces the old one by rename.

    Tables that the old header named are removed only after the new header is in place, so a
    crash at any point leaves a loadable manifest (the old one or the new one).
    """
    if table_format not in TABLE_FORMATS:
        raise ManifestError(f"unknown table format {table_format!r} (known: {', '.join(TABLE_FORMATS)})")
    location = resolve_location(path)
    location.mkdir(parents=True, exist_ok=True)
    header_path = location / HEADER_NAME
    old_tables: set[str] = set()
    if header_path.is_file():
        try:
            old_tables = set((json.loads(header_path.read_text()).get("tables") or {}).values())
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            old_tables = set()
    images = _coerce(manifest.images, IMAGE_COLUMNS, "images")
    annotations = _coerce(manifest.annotations, ANNOTATION_COLUMNS, "annotations")
    validate(
        Manifest(images=images, annotations=annotations, categories=manifest.categories),
        "images",
        "annotations",
    )
    taken = set(old_tables)
    tables: dict[str, str] = {}
    try:
        for kind, df in (("images", images), ("annotations", annotations)):
            name = _table_name(kind, table_format, taken)
            taken.add(name)
            write_atomic(location / name, lambda tmp: _write_table(df, tmp, table_format))
            tables[kind] = name
    except BaseException:
        # the old header still names the old tables; drop what this failed save wrote
        for name in tables.values():
            (location / name).unlink(missing_ok=True)
        raise
    image_root = manifest.image_root
    if os.path.isabs(image_root) or (manifest.location is not None and manifest.location != location.resolve()):
        # relative to where it is written, as ingest writes it, so a manifest and its images can
        # move together (a loaded manifest saved elsewhere keeps pointing at the same images)
        image_root = Path(os.path.relpath(manifest.root().resolve(), location.resolve())).as_posix()
    header = {
        "schema_version": SCHEMA_VERSION,
        "created_by": f"datakit {__version__}",
        "tasks": list(manifest.tasks),
        "categories": list(manifest.categories),
        "image_root": image_root,
        "tables": tables,
        "counts": {"images": int(len(images)), "annotations": int(len(annotations))},
        "source": manifest.source,
        "extra": manifest.extra,
    }
    if manifest.pipelines:
        header["pipelines"] = manifest.pipelines
    write_json(header_path, header, fsync=True, ensure_ascii=False)
    _fsync_dir(location)
    for stale in old_tables - set(tables.values()):
        if "/" not in stale and not check_relative_path(stale):
            (location / stale).unlink(missing_ok=True)
    manifest.location = location.resolve()
    manifest.image_root = image_root
    return location
