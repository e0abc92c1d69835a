"""Annotation formats, one module each, registered by name.

Each format module defines ``NAME``, ``detect(src) -> bool``, ``read(src, options) -> ReadResult``
and ``write(manifest, out, options) -> WriteResult`` (see ``base``). Adding a format is one module
plus one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from datakit.errors import DatakitError

# name -> module path; modules are imported on first use so start-up stays fast
REGISTRY: dict[str, str] = {}


def get_format(name: str) -> ModuleType:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none yet"
        raise DatakitError(f"unknown format {name!r}; known formats: {known}")
    return importlib.import_module(REGISTRY[name])


def format_names() -> list[str]:
    return sorted(REGISTRY)
