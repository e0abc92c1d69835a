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

from dataclasses import dataclass, field
from typing import Any, Callable

from datakit.errors import DatakitError

ORIENTATIONS: dict[str, str] = {
    "upright": "content has an up but no left/right: horizontal flips, small rotations",
    "any": "content has no up (shapes, aerial, microscopy): all flips, any rotation",
    "fixed": "orientation carries meaning (digits, text, arrows): no flips, a few degrees of rotation",
}
DEFAULT_ORIENTATION = "upright"
PRESET_TASKS = ("classification", "detection", "instance_segmentation", "semantic_segmentation")


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    assumes: str
    """What the preset takes for granted about the data, shown by ``datakit augment --list-presets``."""
    build_transforms: Callable[[str, str], list[Any]]
    min_visibility: float = 0.0
    """Objects with less of their box left in the image are dropped (object tasks only)."""
    min_area: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)

    def build(self, task: str, orientation: str) -> list[Any]:
        if task not in PRESET_TASKS:
            raise DatakitError(f"preset '{self.name}': unknown task {task!r}; known: {', '.join(PRESET_TASKS)}")
        return self.build_transforms(task, check_orientation(orientation))

    def box_params(self, task: str) -> dict[str, float]:
        if task in ("detection", "instance_segmentation"):
            return {"min_visibility": self.min_visibility, "min_area": self.min_area}
        return {"min_visibility": 0.0, "min_area": 0.0}


def check_orientation(orientation: str) -> str:
    if orientation not in ORIENTATIONS:
        import difflib

        close = difflib.get_close_matches(orientation, list(ORIENTATIONS), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DatakitError(f"unknown orientation '{orientation}'{hint} (known: {', '.join(ORIENTATIONS)})")
    return orientation


def flips(orientation: str) -> list[Any]:
    """The flips an orientation assumption allows."""
    import albumentations as A

    if orientation == "fixed":
        return []
    if orientation == "upright":
        return [A.HorizontalFlip(p=0.5)]
    # no quarter turns: they swap width and height of non-square images; Affine rotates freely instead
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]


def rotation(orientation: str, upright_degrees: float) -> tuple[float, float]:
    """Rotation range: ``upright_degrees`` for upright content, a third of it when fixed, any for ``any``."""
    if orientation == "any":
        return (-180.0, 180.0)
    degrees = upright_degrees if orientation == "upright" else max(2.0, upright_degrees / 3)
    return (-degrees, degrees)


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
