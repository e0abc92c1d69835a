"""`datakit augment MANIFEST --preview grid.png`: originals beside augmented versions, targets drawn.

One row per source image: the original, then ``versions`` augmented copies made by the same code
as the offline writer (same seeds as the first copies ``datakit augment`` would write). Boxes are
outlined and labelled, instance masks and the semantic mask are tinted in their class colour, so a
user sees at a glance whether boxes and masks follow the pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datakit.errors import DatakitError

CELL = 192  # pixels per tile side in the grid
HEADER = 22


@dataclass
class PreviewResult:
    path: Path
    sources: int
    versions: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sources": self.sources, "versions": self.versions}


def _colour(label: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(label * 7919 + 17)
    return tuple(int(v) for v in rng.integers(60, 256, 3))


def draw(pixels: np.ndarray, boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray | None,
         semantic: np.ndarray | None, names: dict[int, str]) -> np.ndarray:
    """An RGB tile of ``CELL`` x ``CELL`` with masks tinted and boxes outlined and named."""
    import cv2

    image = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    height, width = image.shape[:2]
    scale = CELL / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    tile = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA).astype(np.float32)
    layers: list[tuple[np.ndarray, tuple[int, int, int]]] = []
    if semantic is not None:
        for value in np.unique(semantic):
            if value:
                layers.append((semantic == value, _colour(int(value))))
    if masks is not None:
        layers += [(m > 0, _colour(int(label))) for m, label in zip(masks, labels)]
    for mask, colour in layers:
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        tile[small] = tile[small] * 0.55 + np.array(colour, dtype=np.float32) * 0.45
    tile = np.clip(tile, 0, 255).astype(np.uint8)
    for (x, y, w, h), label in zip(boxes, labels):
        colour = _colour(int(label))
        p0 = (int(round(x * scale)), int(round(y * scale)))
        p1 = (int(round((x + w) * scale)) - 1, int(round((y + h) * scale)) - 1)
        cv2.rectangle(tile, p0, p1, colour, 1)
        cv2.putText(tile, names.get(int(label), str(label)), (p0[0] + 2, max(10, p0[1] - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    canvas = np.full((CELL, CELL, 3), 32, dtype=np.uint8)
    canvas[: tile.shape[0], : tile.shape[1]] = tile
    return canvas


def make_preview(manifest: Any, pipeline: Any, split: str, seed: int, path: str | os.PathLike[str],
                 count: int = 4, versions: int = 3) -> PreviewResult:
    import albumentations as A
    import cv2

    from datakit.augmentation import render as rendering
    from datakit.augmentation import targets
    from datakit.augmentation.offline import _jobs_for, _objects_by_image, select_sources
    from datakit.augmentation.specs import from_header

    if count < 1 or versions < 1:
        raise DatakitError(f"--preview needs at least one source and one version, got {count} and {versions}")
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise DatakitError(f"{path}: the preview is an image; give a .png or .jpg file name")
    sources = select_sources(manifest, split).head(count)
    objects = _objects_by_image(manifest)
    compose = from_header({"pipeline": pipeline.serialized()})
    identity = targets.compose([A.NoOp()])
    names = {int(c["id"]): c["name"] for c in manifest.categories}
    rows = []
    for _, row in sources.iterrows():
        jobs = _jobs_for([(row, copy) for copy in range(versions)], manifest, objects, pipeline.hash(), seed, 0)
        tiles = []
        original = rendering.render(identity, jobs[0][0])
        tiles.append(draw(original.pixels, original.boxes, original.labels, original.masks,
                          original.semantic_values, names))
        for job, *_ in jobs:
            done = rendering.render(compose, job)
            tiles.append(draw(done.pixels, done.boxes, done.labels, done.masks, done.semantic_values, names))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    header = np.full((HEADER, grid.shape[1], 3), 255, dtype=np.uint8)
    for column, title in enumerate(["original", *[f"augmented #{i + 1}" for i in range(versions)]]):
        cv2.putText(header, title, (column * CELL + 6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([header, grid], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix.lower(), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DatakitError(f"{path}: cannot encode the preview")
    path.write_bytes(data.tobytes())
    return PreviewResult(path=path, sources=len(rows), versions=versions)
