"""Annotation formats, one module each, registered by name.

Each format module defines ``NAME``, ``detect(src) -> bool``, ``read(src, options) -> ReadResult``
and ``write(manifest, out, options) -> WriteResult`` (see ``base``). Adding a format is one module
plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from datakit.errors import DatakitError

if TYPE_CHECKING:  # pragma: no cover
    from datakit.formats.base import ReadOptions, ReadResult

# name -> module path; modules are imported on first use so start-up stays fast
REGISTRY: dict[str, str] = {
    "coco": "datakit.formats.coco",
    "voc": "datakit.formats.voc",
    "yolo": "datakit.formats.yolo",
    "labelme": "datakit.formats.labelme",
    "imagefolder": "datakit.formats.imagefolder",
    "masks": "datakit.formats.masks",
}
# the order formats are tried when none is named; imagefolder is absent on purpose: a plain
# folder of class sub-folders is the folder ingest's job, not a format to detect
DETECT_ORDER = ("coco", "voc", "yolo", "labelme", "masks")


def get_format(name: str) -> ModuleType:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none yet"
        raise DatakitError(f"unknown format {name!r}; known formats: {known}")
    return importlib.import_module(REGISTRY[name])


def format_names() -> list[str]:
    return sorted(REGISTRY)


def detect_format(src: str | Path) -> str | None:
    """The first format whose files are in ``src``, or None (a plain image folder)."""
    path = Path(src)
    for name in DETECT_ORDER:
        if get_format(name).detect(path):
            return name
    return None


def read_source(src: str | Path, format: str | None, options: "ReadOptions") -> "ReadResult":
    """Read ``src`` with the named format, or the one detected in it."""
    path = Path(src)
    if not path.exists():
        raise DatakitError(f"{src}: does not exist")
    name = format or detect_format(path)
    if name is None:
        raise DatakitError(f"{src}: no annotation format recognized; name one with --format ({', '.join(format_names())})")
    return get_format(name).read(path, options)
