"""The manifest's pandas-free half: schema constants, the header and the path rules.

Kept apart from ``datakit.manifest`` (which holds the tables as pandas DataFrames) so that reading
a header, and ``datakit info``'s Parquet-only read (``datakit.manifest_arrow``), never import
pandas. ``datakit.manifest`` re-exports every name here.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, TypeVar

from datakit.errors import DatakitError, ManifestError

T = TypeVar("T")

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


_UNSAFE_PATH = r"^[/\\]|^[A-Za-z]:|(?:^|[/\\])\.\.(?:[/\\]|$)"


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


@contextmanager
def trusting_outside(flag: bool | None) -> Iterator[None]:
    """With ``flag`` true, image roots outside the data set are trusted for the duration, in this
    process and the ones it starts (DataLoader workers, sweep trials, pipeline steps): set as
    ``$DATAKIT_ALLOW_OUTSIDE`` because the manifest is loaded deep inside those, not where
    ``--allow-outside`` is parsed. The previous value comes back afterwards."""
    if not flag:
        yield
        return
    previous = os.environ.get(ALLOW_OUTSIDE_ENV)
    os.environ[ALLOW_OUTSIDE_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ALLOW_OUTSIDE_ENV, None)
        else:
            os.environ[ALLOW_OUTSIDE_ENV] = previous


def takes_allow_outside(fn: Callable[..., T]) -> Callable[..., T]:
    """Give an API function whose manifest is loaded deep inside it (train, evaluate, sweep,
    run_pipeline, augment) the ``allow_outside`` argument its command has: keyword-only, applied
    with ``trusting_outside`` for the call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, allow_outside: bool | None = None, **kwargs: Any) -> T:
        _refuse_loaded_manifests(fn.__name__, [*args, *kwargs.values()])
        with trusting_outside(allow_outside):
            return fn(*args, **kwargs)

    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
    params.insert(at, inspect.Parameter("allow_outside", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation="bool | None"))
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def _refuse_loaded_manifests(function: str, arguments: list[Any]) -> None:
    """The API takes manifest folders: a loaded ``Manifest`` failed deep inside with a bare TypeError.
    (A run records where its manifest lives, so resume and eval can find it again.)"""
    if any(type(value).__name__ == "Manifest" and hasattr(value, "images") for value in arguments):
        raise DatakitError(f"datakit.{function}: give the manifest's folder (a path), not a loaded Manifest; "
                           "datakit.save_manifest(manifest, folder) writes one")


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


def check_output_outside(output: str | os.PathLike[str], inputs: dict[str, str | os.PathLike[str]],
                         option: str = "") -> None:
    """Refuse an output folder that is an input folder or lies inside one (``inputs``: what -> folder;
    ``option``, such as ``--html``, starts the message).

    What a command writes there becomes part of its input: derived images under the image root are
    picked up as a new class by the next ingest, a folder inside a manifest's folder is left behind
    when that manifest is moved or rewritten.
    """
    out = Path(output).resolve()
    for what, folder in inputs.items():
        inside = Path(folder).resolve()
        if out == inside or inside in out.parents:
            raise DatakitError(f"{option + ' ' if option else ''}{output}: is inside the {what} ({inside}); "
                               "write the output outside it, e.g. beside the manifest")


def data_set_folders(manifest: Any) -> dict[str, Path]:
    """What -> folder for ``check_output_outside``: a manifest's folder and its image root.

    ``manifest``: a loaded Manifest, or the path of one (only its header is read).
    """
    if isinstance(manifest, (str, os.PathLike)):
        head = read_header(manifest, allow_outside=True)  # where it points is checked where it is loaded
        location = head.location.resolve()
        root = Path(str(head.data.get("image_root", ".")))
        return {"manifest's folder": location, "manifest's image folder": location / root}
    folders = {"manifest's folder": Path(manifest.location)} if manifest.location is not None else {}
    return {**folders, "manifest's image folder": manifest.root()}


def check_output_folder(output: str | os.PathLike[str], option: str, manifest: Any) -> None:
    """Refuse an output folder (``eval -o``, ``train -o``, ``sweep -o``) inside a manifest's folder or
    image root: its plots and sample images would become images of the data set at the next ingest."""
    check_output_outside(output, data_set_folders(manifest), option)


def check_output_file(output: str | os.PathLike[str], option: str, manifest: Any) -> None:
    """Refuse a file a command writes (``--html``, ``--preview``) where it would overwrite the data set.

    Inside the manifest's folder it replaces the manifest's own files (``--html m/manifest.json``);
    inside the image root it replaces an image or becomes one (the next ingest reads it). A folder
    is refused here too: the atomic rename onto it failed only after the whole report had run.
    """
    if Path(output).is_dir():
        raise DatakitError(f"{option} {output}: is a folder; name a file")
    check_output_folder(output, option, manifest)


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



def resolve_location(path: str | os.PathLike[str]) -> Path:
    """The manifest directory for a path naming the directory or its manifest.json."""
    path = Path(path)
    if path.name == HEADER_NAME:
        return path.parent
    return path


def manifest_exists(path: str | os.PathLike[str]) -> bool:
    return (resolve_location(path) / HEADER_NAME).is_file()




@dataclass
class Header:
    """A manifest's validated header and where its table files are (None: no such table)."""

    location: Path
    path: Path
    data: dict[str, Any]
    tables: dict[str, Path | None]

    def table_names(self) -> tuple[str, str]:
        """The names validation errors use for the images and annotations tables."""
        names = self.data.get("tables") or {}
        return str(self.location / names["images"]), str(self.location / names.get("annotations", "annotations"))


def read_header(path: str | os.PathLike[str], allow_outside: bool | None = None) -> Header:
    """Read and validate a manifest's header: schema, categories, image root (refused when it
    leaves the data set unless ``allow_outside``, default ``$DATAKIT_ALLOW_OUTSIDE``) and the
    table files it names (plain file names that exist)."""
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
    names = header.get("tables") or {}
    tables: dict[str, Path | None] = {}
    for name in ("images", "annotations"):
        file_name = names.get(name)
        if file_name is None:
            if name == "images":
                raise ManifestError(f"{header_path}: 'tables.images' is missing")
            tables[name] = None
            continue
        if check_relative_path(file_name) or "/" in file_name:
            raise ManifestError(f"{header_path}: table file name {file_name!r} must be a plain file name")
        if not (location / file_name).is_file():
            raise ManifestError(f"{header_path}: table file {file_name!r} does not exist")
        tables[name] = location / file_name
    return Header(location=location, path=header_path, data=header, tables=tables)
