"""Class maps and instance maps for exports (VOC segmentation PNGs, mask folders).

A map comes from the source file when the manifest points at one (so void borders, overlaps and
ids survive pixel for pixel), and is painted from the objects' segmentations otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from datakit import geometry
from datakit.formats.base import ExportImage

VOID = 255

Objects = list[tuple[int, dict[str, Any]]]  # (value in the map, annotation)


def segmented_objects(image: ExportImage, values: list[int] | None = None) -> Objects:
    """(map value, annotation) for the image's objects that have a segmentation.

    Values default to the object's 1-based position among all the image's annotations (VOC's rule).
    """
    positions = values or list(range(1, len(image.annotations) + 1))
    return [(v, a) for v, a in zip(positions, image.annotations) if a["kind"] is not None]


def paint(shape: tuple[int, int], objects: Objects, value_of: Callable[[int, dict[str, Any]], int], root: Path) -> np.ndarray:
    """Rasterize objects, larger ones first, so small ones stay visible where they overlap."""
    canvas = np.zeros(shape, dtype=np.int64)
    for value, ann in sorted(objects, key=lambda va: -(va[1]["area"] or 0)):
        mask = geometry.segmentation_mask(ann["kind"], ann["segmentation"], shape[0], shape[1], root)
        canvas[mask > 0] = value_of(value, ann)
    return canvas


def single_source(objects: Objects) -> str | None:
    """The instance map all objects come from, when they all come from one."""
    paths = {a["segmentation"].get("path") for _, a in objects if a["kind"] == "mask_file"}
    if len(paths) == 1 and all(a["kind"] == "mask_file" for _, a in objects):
        return paths.pop()
    return None


def instance_map(shape: tuple[int, int], objects: Objects, root: Path, keep_void: bool = True) -> np.ndarray:
    """Object ``value`` per pixel. From one source map its values are re-coded (others become 0,
    void stays void); otherwise the objects are painted."""
    source_path = single_source(objects)
    if source_path is None:
        return paint(shape, objects, lambda value, ann: value, root)
    source = geometry.read_label_png_cached(str(root / source_path))
    lut = np.zeros(max(256, int(source.max()) + 1), dtype=np.int64)
    if keep_void:
        lut[VOID] = VOID
    for value, ann in objects:
        lut[int(ann["segmentation"]["value"])] = value
    return lut[source]


def class_map(image: ExportImage, shape: tuple[int, int], class_value: dict[str, int], recode: dict[int, int],
              source_palette: np.ndarray | None, root: Path) -> np.ndarray:
    """Class value per pixel: the image's semantic mask re-coded (manifest id -> target value,
    anything else kept), or its objects painted with their class values."""
    if image.semantic_mask is not None:
        values = geometry.read_label_png(root / image.semantic_mask, source_palette)
        lut = np.arange(max(256, int(values.max()) + 1), dtype=np.int64)
        for old, new in recode.items():
            if old < len(lut):
                lut[old] = new
        return lut[values]
    return paint(shape, segmented_objects(image), lambda value, ann: class_value[ann["category"]], root)
