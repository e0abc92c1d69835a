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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.formats import get_format, read_source  # noqa: F401 - read_source: the convert API
from datakit.formats.base import ReadOptions, ReadResult, WriteOptions, WriteResult
from datakit.ingest import IngestResult, ingest_format  # noqa: F401 - ingest_format: the convert API
from datakit.manifest import Manifest, load_manifest

# one result type for every ingest; the name format ingests had before
FormatIngestResult = IngestResult


@dataclass
class ConvertResult:
    source_format: str
    read: ReadResult
    written: WriteResult

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.source_format, "read": self.read.report.as_dict(), **self.written.as_dict()}


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
