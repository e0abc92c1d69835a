"""Augmentation presets: one module per preset, registered in :data:`PRESETS`.

A preset is a recipe, not a fixed list: it builds its transforms for a task (classification,
detection, instance or semantic segmentation) and an *orientation assumption* about the content,
because a flip that is harmless for one data set changes the label of another:

- ``upright``: the content has an up but no left/right (photos, objects in scenes, shapes drawn on
  a table): horizontal flips, small rotations. The default.
- ``any``: the content has no up either (shapes, aerial and satellite images, microscopy):
  horizontal and vertical flips, any rotation.
- ``fixed``: orientation carries meaning (digits, letters, arrows, traffic signs): no flips, rotations
  of a few degrees only.

Every preset keeps the image size (training needs fixed sizes; offline copies stay comparable) and
only uses transforms that move boxes and masks (albumentations' dual transforms) or touch pixel
values only. Adding a preset is one module here plus one entry in ``PRESETS``; the contract test in
tests/test_augmentation_presets.py runs over all of them.
"""

from __future__ import annotations

from typing import Any

from datakit.augmentation.presets.base import (  # noqa: F401 - the presets API
    DEFAULT_ORIENTATION,
    ORIENTATIONS,
    PRESET_TASKS,
    Preset,
    check_orientation,
    flips,
    rotation,
)
from datakit.errors import DatakitError


def _registry() -> dict[str, Preset]:
    from datakit.augmentation.presets import heavy, light, medium

    return {p.name: p for p in (light.PRESET, medium.PRESET, heavy.PRESET)}


PRESETS: dict[str, Preset] = _registry()


def get(name: str) -> Preset:
    preset = PRESETS.get(name)
    if preset is None:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DatakitError(f"unknown preset '{name}'{hint} (known: {', '.join(PRESETS)}; or give a spec file "
                           "ending in .yaml, .yml or .json)")
    return preset


def catalogue() -> dict[str, Any]:
    """The presets and orientation assumptions with what each does and assumes (``--list-presets``)."""
    return {
        "presets": [{"name": p.name, "transforms": p.summary, "assumes": p.assumes} for p in PRESETS.values()],
        "orientations": [{"name": name, "assumes": text} for name, text in ORIENTATIONS.items()],
    }
