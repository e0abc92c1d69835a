"""Ground truth from a manifest, numbered the way datakit's own exports number it.

A COCO results file names images by the id datakit's COCO export writes (the source id when every
image of an export file has a unique positive one, else 1..N per split in path order) or by
``file_name``; categories by the export's category id (the header id, shifted by one when a
category has id 0). YOLO prediction files are matched by file stem, their class index being the
position in the category table; semantic mask PNGs by file stem.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from datakit.errors import DatakitError
from datakit.formats import coco as coco_format
from datakit.formats import yolo as yolo_format
from datakit.formats.base import Report, by_split, export_names, object_categories, target_category_ids
from datakit.manifest import SPLITS, Manifest
from datakit.metrics.coco import Instances


@dataclass
class Truth:
    """The evaluated images of a manifest and the id tables predictions are matched by."""

    manifest: Manifest
    images: pd.DataFrame                      # evaluated image rows (status ok, the split)
    split: str | None
    coco_ids: dict[int, str] = field(default_factory=dict)       # COCO image id -> manifest image id
    by_name: dict[str, str] = field(default_factory=dict)        # file name / path -> manifest image id
    by_stem: dict[str, str] = field(default_factory=dict)        # file stem -> manifest image id
    category_ids: dict[str, int] = field(default_factory=dict)   # name -> COCO category id
    yolo_index: dict[str, int] = field(default_factory=dict)     # name -> YOLO class index
    notes: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)      # manifest image id -> (height, width)
    paths: dict[str, str] = field(default_factory=dict)                  # manifest image id -> path
    # manifest image id -> the COCO image id datakit's export writes in its split's file (kept where
    # ids repeat across splits too: ``datakit predict`` writes it beside ``file_name``)
    export_ids: dict[str, int] = field(default_factory=dict)
    _tails: dict[str, str] | None = field(default=None, repr=False)  # flattened path tail -> image id
    # COCO image ids two split files of datakit's export both use (each numbers its images 1..N)
    repeated_coco_ids: set[int] = field(default_factory=set)

    @property
    def category_of_id(self) -> dict[int, str]:
        return {v: k for k, v in self.category_ids.items()}

    @property
    def category_of_index(self) -> dict[int, str]:
        return {v: k for k, v in self.yolo_index.items()}

    def size(self, image_id: str) -> tuple[int, int]:
        return self.sizes[image_id]

    def image_of_stem(self, stem: str) -> str | None:
        """The evaluated image a prediction file named ``STEM.txt`` / ``STEM.png`` belongs to: by
        file stem, by the name datakit's YOLO export gives it, or by its path flattened with '__'
        (``datakit predict``'s name for images that share a stem, ``a__x`` for ``.../a/x.png``),
        matched from the end of the path where only one image ends that way."""
        found = self.by_stem.get(stem)
        if found is not None or "__" not in stem:
            return found
        if self._tails is None:
            tails: dict[str, str | None] = {}
            for image_id, path in zip(self.images.index, self.images["path"].astype(str)):
                parts = posixpath.splitext(path)[0].split("/")
                for k in range(2, len(parts) + 1):
                    tail = "__".join(parts[-k:])
                    tails[tail] = None if tails.get(tail, image_id) != image_id else image_id
            self._tails = {tail: i for tail, i in tails.items() if i is not None}
        return self._tails.get(stem)


def load_truth(manifest: Manifest, split: str | None) -> Truth:
    images = manifest.images[manifest.images["status"] == "ok"]
    if split not in (None, "all"):
        if split not in SPLITS:
            raise DatakitError(f"unknown split {split!r}; choose one of: {', '.join((*SPLITS, 'all'))}")
        images = images[images["split"] == split]
        if images.empty:
            raise DatakitError(f"{manifest.location}: split {split!r} has no usable images")
    if images.empty:
        raise DatakitError(f"{manifest.location}: the manifest has no usable images to score")
    if images["width"].isna().any() or images["height"].isna().any():
        bad = images.loc[images["width"].isna() | images["height"].isna(), "path"].tolist()
        raise DatakitError(f"{manifest.location}: {len(bad)} image(s) have no width/height (e.g. {bad[0]})")
    images = images.set_index(images["id"].astype(str), drop=False)
    truth = Truth(manifest, images, None if split == "all" else split)
    ids = images.index.tolist()
    truth.sizes = dict(zip(ids, zip(images["height"].astype(int).tolist(), images["width"].astype(int).tolist())))
    truth.paths = dict(zip(ids, images["path"].astype(str).tolist()))
    _coco_image_ids(truth)
    report = Report()
    used = set(manifest.annotations["category"].dropna().astype(str)) if len(manifest.annotations) else set()
    holder = [SimpleNamespace(annotations=[{"category": name} for name in used])]
    categories = object_categories(manifest.categories, holder, report, "coco")  # type: ignore[arg-type]
    truth.category_ids = target_category_ids(categories, "keep_nonzero", report, "COCO category ids")
    truth.yolo_index = target_category_ids(categories, "contiguous0", Report(), "YOLO class indices")
    for entry in report.remapped:
        truth.notes.append(f"category {entry['category']!r}: COCO id {entry['to']} (manifest id {entry['from']}), "
                           "as datakit's COCO export writes it")
    return truth


def _coco_image_ids(truth: Truth) -> None:
    """The image ids and file names datakit's COCO export writes, per split file."""
    rows = truth.images
    sources = rows["source_id"].tolist() if "source_id" in rows else [None] * len(rows)
    exported = [SimpleNamespace(id=i, path=p, split=None if pd.isna(s) else s,
                                source_id=None if pd.isna(src) else str(src))
                for i, p, s, src in zip(rows["id"].astype(str).tolist(), rows["path"].astype(str).tolist(),
                                        rows["split"].tolist(), sources)]
    exported.sort(key=lambda e: e.path)
    clash: set[int] = set()
    for split, group in by_split(exported):  # type: ignore[arg-type]
        numbers = coco_format._image_ids(group, "", Report())
        for number, image in zip(numbers, group):
            truth.export_ids[image.id] = int(number)
            if number in truth.coco_ids and truth.coco_ids[number] != image.id:
                clash.add(number)
            truth.coco_ids[number] = image.id
        names = export_names([im.path for im in group])
        for image in group:
            truth.by_name[names[image.path]] = image.id
    for image in exported:
        truth.by_name[image.path] = image.id
        stem = posixpath.splitext(posixpath.basename(image.path))[0]
        truth.by_stem[stem] = None if stem in truth.by_stem else image.id  # type: ignore[assignment]
        truth.by_name.setdefault(posixpath.basename(image.path), image.id)
    truth.by_stem = {k: v for k, v in truth.by_stem.items() if v is not None}
    _yolo_export_stems(truth, exported)
    for number in clash:  # said only to predictions that use one (mask PNGs and file names never do)
        del truth.coco_ids[number]
    truth.repeated_coco_ids = clash


def _yolo_export_stems(truth: Truth, exported: list[SimpleNamespace]) -> None:
    """Stems of the names datakit's YOLO export gives images whose stems collide (``a.jpg`` and
    ``a.png`` are written as ``a.jpg.jpg`` and ``a.png.png``): a model run on that export writes
    ``a.jpg.txt``, which must find its image as ``a.txt`` does."""
    renamed: dict[str, str | None] = {}
    for _, group in by_split(exported):  # type: ignore[arg-type]
        plain = export_names([im.path for im in group])
        names = yolo_format.unique_stem_names(plain)
        for image in group:
            if names[image.path] == plain[image.path]:
                continue
            stem = posixpath.splitext(posixpath.basename(names[image.path]))[0]
            renamed[stem] = None if renamed.get(stem, image.id) != image.id else image.id
    for stem, image_id in renamed.items():
        if image_id is not None:
            truth.by_stem.setdefault(stem, image_id)


def ground_truth(truth: Truth, masks: bool) -> tuple[Instances, dict[int, str]]:
    """The evaluated images' objects as arrays with COCO ids; RLEs when ``masks``.

    Object order is the manifest's (the order datakit's export writes), which decides ties in
    matching exactly as in pycocotools. Returns the instances and COCO image id -> manifest id.
    """
    ann = truth.manifest.annotations
    image_number = {v: k for k, v in truth.coco_ids.items()}
    if len(truth.coco_ids) < len(truth.images):
        # ids clash across splits: number images privately (predictions then match by file_name)
        image_number = {im: n for n, im in enumerate(truth.images.index.tolist(), start=1)}
    ann = ann[ann["image_id"].astype(str).isin(image_number) & ann["category"].astype(str).isin(truth.category_ids)]
    image = ann["image_id"].astype(str).map(image_number).to_numpy(dtype=np.int64)
    category = ann["category"].astype(str).map(truth.category_ids).to_numpy(dtype=np.int64)
    boxes = ann[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=np.float64, na_value=np.nan)
    area = ann["area"].to_numpy(dtype=np.float64, na_value=np.nan)
    area = np.where(np.isnan(area), boxes[:, 2] * boxes[:, 3], area)
    crowd = ann["iscrowd"].fillna(0).to_numpy(dtype=np.int64)
    rles = None
    if masks:
        from pycocotools import mask as mask_utils

        from datakit import geometry

        rles = []
        root = truth.manifest.root()
        for image_id, kind, seg in zip(ann["image_id"].astype(str), ann["segmentation_kind"], ann["segmentation"]):
            h, w = truth.size(image_id)
            if kind is None or pd.isna(kind):
                # a box-only object: pycocotools turns its "segmentation": [] into an empty mask
                rle = mask_utils.encode(np.zeros((h, w), dtype=np.uint8, order="F"))
            else:
                value = json.loads(seg) if isinstance(seg, str) else seg
                rle = geometry.segmentation_rle(kind, value, h, w, root)
                rle = c_rle(rle, h, w)
            rles.append(rle)
    ids = np.arange(1, len(ann) + 1, dtype=np.int64)
    return Instances(image, category, boxes, area, ids, iscrowd=crowd, rles=rles), {v: k for k, v in image_number.items()}


def c_rle(rle: dict[str, Any], h: int, w: int) -> dict[str, Any]:
    """An RLE in the form pycocotools' C functions take (bytes counts)."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(rle, h, w)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
