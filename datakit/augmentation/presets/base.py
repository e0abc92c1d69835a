"""What every preset is made of: the ``Preset`` record, orientation assumptions, shared flips and rotations.

Kept apart from the registry (``presets/__init__.py``) so preset modules import it without
importing the registry that imports them.
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
