"""Annotation formats in and out: ingest a format into a manifest, export a manifest to a format,
and convert one format to another in one step.

The format modules (``datakit.formats``) do the reading and writing; this module adds what is the
same for all of them: choosing the format, saving the manifest, and writing an export into a
staging folder that is renamed into place only when complete, so a crash never leaves a
half-written export under the name a trainer would read.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit.errors import CheckFailed, DatakitError
from datakit.formats import detect_format, format_names, get_format
from datakit.formats.base import ReadOptions, ReadResult, Report, WriteOptions, WriteResult
from datakit.ingest import IngestResult, check_output
from datakit.manifest import (
    Manifest,
    check_image_root,
    load_manifest,
    manifest_exists,
    resolve_location,
    save_manifest,
)


@dataclass
class FormatIngestResult(IngestResult):
    """An ingest from an annotation format: the folder ingest's summary plus objects and report."""

    format: str = ""
    annotations: int = 0
    annotation_counts: dict[str, int] = field(default_factory=dict)
    report: Report = field(default_factory=Report)

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data.update(format=self.format, annotations=self.annotations, annotations_per_category=self.annotation_counts,
                    report=self.report.as_dict())
        return data


@dataclass
class ConvertResult:
    source_format: str
    read: ReadResult
    written: WriteResult

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.source_format, "read": self.read.report.as_dict(), **self.written.as_dict()}


def read_source(src: str | os.PathLike[str], format: str | None, options: ReadOptions) -> ReadResult:
    """Read ``src`` with the named format, or the one detected in it."""
    path = Path(src)
    if not path.exists():
        raise DatakitError(f"{src}: does not exist")
    name = format or detect_format(path)
    if name is None:
        raise DatakitError(f"{src}: no annotation format recognized; name one with --format ({', '.join(format_names())})")
    return get_format(name).read(path, options)


def ingest_format(
    src: str | os.PathLike[str],
    output: str | os.PathLike[str],
    format: str | None = None,
    on_invalid: str = "clip",
    image_dir: str | None = None,
    workers: int | None = None,
    verify: str = "structure",
    strict: bool = False,
    table_format: str = "parquet",
    show_progress: bool = True,
    max_pixels: int | None = None,
    allow_outside: bool | None = None,
) -> FormatIngestResult:
    """Read an annotation format into the manifest at ``output`` (``datakit ingest --format``)."""
    from datakit.imageinfo import VERIFY_MODES

    started = time.perf_counter()
    if verify not in VERIFY_MODES:
        raise DatakitError(f"unknown verify mode {verify!r}; choose one of: {', '.join(VERIFY_MODES)}")
    check_output(src, output, allow_outside)
    options = ReadOptions(on_invalid=on_invalid, image_dir=image_dir, workers=workers, verify=verify,
                          show_progress=show_progress, max_pixels=max_pixels)
    result = read_source(src, format, options)
    manifest = result.manifest
    out_location = resolve_location(output)
    new_root = Path(manifest.image_root).resolve()
    check_image_root(os.path.relpath(new_root, out_location.resolve()), str(output), allow_outside)
    if manifest_exists(out_location):
        # the same rule as the folder ingest: a manifest is replaced only by one of the same images
        old_root = load_manifest(out_location, validate_schema=False, allow_outside=True).root().resolve()
        if old_root != new_root:
            raise DatakitError(f"{out_location}: this manifest was made from {old_root}, not {new_root}; "
                               "choose another output")
    images = manifest.images
    broken = images[images["status"] != "ok"]
    broken_list = [{"path": p, "status": s, "reason": r}
                   for p, s, r in zip(broken["path"], broken["status"], broken["reason"])]
    if strict and (broken_list or result.report.skipped):
        first = broken_list[0] if broken_list else result.report.skipped[0]
        raise CheckFailed(f"{len(broken_list)} broken file(s) and {len(result.report.skipped)} skipped item(s), first: "
                          f"{first['path']} ({first['reason']}); nothing written (--strict)")
    out_location.mkdir(parents=True, exist_ok=True)
    # relative, so a manifest and its images can move together
    manifest.image_root = Path(os.path.relpath(new_root, out_location.resolve())).as_posix()
    save_manifest(manifest, out_location, table_format=table_format)
    ok = images[images["status"] == "ok"]
    report = result.report
    return FormatIngestResult(
        manifest_path=out_location,
        layout=result.format,
        total=len(images),
        status_counts={k: int(v) for k, v in images["status"].value_counts().sort_index().items()},
        label_counts={k: int(v) for k, v in ok["label"].dropna().value_counts().sort_index().items()},
        broken=broken_list,
        skipped=report.skipped,
        seconds=time.perf_counter() - started,
        format=result.format,
        annotations=len(manifest.annotations),
        annotation_counts={k: int(v) for k, v in manifest.annotations["category"].value_counts().sort_index().items()},
        report=report,
    )


def _staged_write(out: Path, write: Any) -> WriteResult:
    """Run ``write(staging)`` and rename the staging folder to ``out`` once it succeeded."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatakitError(f"{out}: exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        result = write(staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    result.output = out
    return result


def export(
    manifest: str | os.PathLike[str] | Manifest,
    format: str,
    output: str | os.PathLike[str],
    images: str = "copy",
    on_invalid: str = "clip",
    include_broken: bool = False,
    crop_objects: bool = False,
    crop_padding: float = 0.0,
    yolo_task: str = "detect",
    decimals: int = 6,
    allow_outside: bool | None = None,
) -> WriteResult:
    """Write a manifest as ``format`` into the new folder ``output`` (``datakit export``).

    A manifest whose image root leaves its data set is refused unless ``allow_outside``."""
    if crop_objects and format != "imagefolder":
        raise DatakitError("--crop-objects writes an ImageFolder data set: use it with --format imagefolder")
    module = get_format(format)
    options = WriteOptions(images=images, on_invalid=on_invalid, include_broken=include_broken,
                           crop_objects=crop_objects, crop_padding=crop_padding, yolo_task=yolo_task, decimals=decimals)
    loaded = manifest if isinstance(manifest, Manifest) else load_manifest(manifest, allow_outside=allow_outside)
    return _staged_write(Path(output), lambda staging: module.write(loaded, staging, options))


def convert(
    src: str | os.PathLike[str],
    to: str,
    output: str | os.PathLike[str],
    format: str | None = None,
    on_invalid: str = "clip",
    image_dir: str | None = None,
    images: str = "copy",
    include_broken: bool = False,
    crop_objects: bool = False,
    crop_padding: float = 0.0,
    yolo_task: str = "detect",
    decimals: int = 6,
    workers: int | None = None,
    show_progress: bool = True,
) -> ConvertResult:
    """Read ``src`` (format named or detected) and write it as ``to`` into ``output``, one step."""
    get_format(to)  # an unknown target fails before any reading
    options = ReadOptions(on_invalid=on_invalid, image_dir=image_dir, workers=workers, show_progress=show_progress)
    read = read_source(src, format, options)
    written = export(read.manifest, to, output, images=images, on_invalid=on_invalid, include_broken=include_broken,
                     crop_objects=crop_objects, crop_padding=crop_padding, yolo_task=yolo_task, decimals=decimals)
    return ConvertResult(read.format, read, written)
