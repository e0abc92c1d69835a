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
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import pandas as pd

from datakit import __version__
from datakit.atomic import write_atomic, write_json
from datakit.errors import ManifestError

SCHEMA_VERSION = 1
HEADER_NAME = "manifest.json"
TABLE_FORMATS = ("parquet", "csv", "jsonl")
TASKS = ("classification", "detection", "instance_segmentation", "semantic_segmentation")
SPLITS = ("train", "val", "test")

# status of an image row: "ok" or the reason class of a file that cannot be used
STATUSES = ("ok", "empty", "truncated", "not_image", "unsupported", "unreadable", "corrupt", "missing",
            # over the pixel limit (a likely decompression bomb); a file name that is not UTF-8
            "too_large", "bad_name")

# column name -> pandas dtype; "string" columns may hold nulls, as may the nullable ints
IMAGE_COLUMNS: dict[str, str] = {
    "id": "string",
    "path": "string",
    "sha256": "string",
    "file_size": "Int64",
    "mtime_ns": "Int64",
    "format": "string",
    "width": "Int64",
    "height": "Int64",
    "orientation": "Int64",
    "channels": "Int64",
    "mode": "string",
    "bit_depth": "Int64",
    "label": "string",
    "split": "string",
    "status": "string",
    "reason": "string",
    "parent_id": "string",
    "transform": "string",
    # semantic segmentation: class map PNG, relative to the image root; pixel value = category id
    "semantic_mask": "string",
    # the id the image had in its source annotation file (e.g. a COCO image id), kept on export
    # when it can be, so predictions scored against the original file still match
    "source_id": "string",
    # lineage of derived (augmented) images, empty for originals: the parent's content hash, the
    # pipeline's hash (its serialized form is in the header under "pipelines"), the seed that
    # regenerates the image, albumentations' applied parameters (JSON) and each parent object's
    # fate (JSON list: kept, clipped or dropped with the reason)
    "parent_sha256": "string",
    "pipeline": "string",
    "seed": "Int64",
    "applied": "string",
    "objects": "string",
}
IMAGE_REQUIRED_NON_NULL = ("id", "path", "status")

ANNOTATION_COLUMNS: dict[str, str] = {
    "id": "string",
    "image_id": "string",
    "category": "string",
    "bbox_x": "float64",
    "bbox_y": "float64",
    "bbox_w": "float64",
    "bbox_h": "float64",
    "area": "float64",
    "iscrowd": "Int64",
    "segmentation_kind": "string",
    "segmentation": "string",
    "attributes": "string",
}
ANNOTATION_REQUIRED_NON_NULL = ("id", "image_id", "category")
SEGMENTATION_KINDS = ("polygon", "rle", "mask_file")


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


_UNSAFE_PATH = r"^[/\\]|^[A-Za-z]:|(?:^|[/\\])\.\.(?:[/\\]|$)"


def _check_relative_paths(paths: pd.Series, column: str, file: str) -> None:
    # vectorized first pass: a per-row Python check costs seconds on a million rows
    suspicious = paths.astype("string").str.contains(_UNSAFE_PATH, regex=True).fillna(False)
    for row in suspicious.to_numpy().nonzero()[0]:
        value = paths.iloc[row]
        problem = check_relative_path(value)
        if problem:
            raise ManifestError(f"{file}: row {row}, column '{column}': value {value!r} {problem}")


def check_relative_path(path: str) -> str | None:
    """Why a stored path is unsafe (absolute, or leaves the root), or None when it is fine."""
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return "is absolute"
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        return "leaves the image root"
    return None


ALLOW_OUTSIDE_ENV = "DATAKIT_ALLOW_OUTSIDE"


def outside_allowed(flag: bool | None = None) -> bool:
    """The user's opt-in for image roots outside the data set: the flag, else $DATAKIT_ALLOW_OUTSIDE=1."""
    if flag is not None:
        return flag
    return os.environ.get(ALLOW_OUTSIDE_ENV, "").strip().lower() in ("1", "true", "yes")


def image_root_problem(image_root: str) -> str | None:
    """Why an image root leaves the data set, or None.

    A root is relative to the manifest's folder and may climb at most one level (``../images``,
    as ingest writes it for a manifest beside its image folder); an absolute root, or one that
    climbs further, could make an export copy any file on the machine (``image_root: /etc``).
    """
    root = image_root.replace("\\", "/")
    if root.startswith("/") or (len(root) > 1 and root[1] == ":"):
        return "is absolute"
    depth = 0
    lowest = 0
    for part in PurePosixPath(root).parts:
        if part == "..":
            depth -= 1
            lowest = min(lowest, depth)
        elif part != ".":
            depth += 1
    if lowest < -1:
        return f"climbs {-lowest} folders above the manifest (at most one is allowed)"
    return None


def check_image_root(image_root: str, where: str, allow_outside: bool | None = None) -> None:
    problem = image_root_problem(image_root)
    if problem and not outside_allowed(allow_outside):
        raise ManifestError(f"{where}: image_root {image_root!r} {problem}; refused because it can reach files "
                            f"outside the data set (pass --allow-outside, or set {ALLOW_OUTSIDE_ENV}=1, "
                            "if you trust this manifest)")


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


def _validate_header(header: Any, file: str) -> None:
    if not isinstance(header, dict):
        raise ManifestError(f"{file}: the header must be a JSON object, found {type(header).__name__}")
    version = header.get("schema_version")
    if not isinstance(version, int):
        raise ManifestError(f"{file}: 'schema_version' is missing or not an integer (found {version!r})")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{file}: schema_version {version} was written by a newer datakit; this one reads up to "
            f"{SCHEMA_VERSION}: upgrade datakit"
        )
    if version < 1:
        raise ManifestError(f"{file}: schema_version {version} is not valid")
    if not isinstance(header.get("pipelines", {}) or {}, dict):
        raise ManifestError(f"{file}: 'pipelines' must be an object keyed by pipeline hash")
    categories = header.get("categories", [])
    if not isinstance(categories, list):
        raise ManifestError(f"{file}: 'categories' must be a list")
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            raise ManifestError(f"{file}: categories[{i}] must have an integer 'id' and a string 'name', found {cat!r}")
        if cat["id"] in seen_ids:
            raise ManifestError(f"{file}: categories[{i}]: id {cat['id']} is used twice")
        if cat["name"] in seen_names:
            raise ManifestError(f"{file}: categories[{i}]: name {cat['name']!r} is used twice")
        seen_ids.add(cat["id"])
        seen_names.add(cat["name"])
    for task in header.get("tasks", []):
        if task not in TASKS:
            raise ManifestError(f"{file}: unknown task {task!r}; known tasks: {', '.join(TASKS)}")


# ---------------------------------------------------------------------------------------------
# reading


def resolve_location(path: str | os.PathLike[str]) -> Path:
    """The manifest directory for a path naming the directory or its manifest.json."""
    path = Path(path)
    if path.name == HEADER_NAME:
        return path.parent
    return path


def manifest_exists(path: str | os.PathLike[str]) -> bool:
    return (resolve_location(path) / HEADER_NAME).is_file()


def _read_table(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    fmt = path.suffix.lstrip(".")
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
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
    location = resolve_location(path)
    header_path = location / HEADER_NAME
    if not location.exists():
        raise ManifestError(f"{location}: does not exist")
    if not header_path.is_file():
        raise ManifestError(f"{location}: not a manifest (no {HEADER_NAME} inside)")
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ManifestError(f"{header_path}: JSON nested too deeply to read; not a manifest header") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{header_path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{header_path}: not a text file") from None
    _validate_header(header, str(header_path))
    check_image_root(str(header.get("image_root", ".")), str(header_path), allow_outside)
    tables = header.get("tables") or {}
    frames: dict[str, pd.DataFrame] = {}
    for name, columns in (("images", IMAGE_COLUMNS), ("annotations", ANNOTATION_COLUMNS)):
        file_name = tables.get(name)
        if file_name is None:
            if name == "images":
                raise ManifestError(f"{header_path}: 'tables.images' is missing")
            frames[name] = empty_table(columns)
            continue
        if check_relative_path(file_name) or "/" in file_name:
            raise ManifestError(f"{header_path}: table file name {file_name!r} must be a plain file name")
        table_path = location / file_name
        if not table_path.is_file():
            raise ManifestError(f"{header_path}: table file {file_name!r} does not exist")
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
        validate(manifest, str(location / tables["images"]), str(location / tables.get("annotations", "annotations")))
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
        df.to_parquet(path, index=False)
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
