"""Test data for the annotation-format tests: generated shapes sets, COCO variants, shared samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datakit import geometry
from datakit.samples import make_shapes
from tests.conftest import SHARED_TESTDATA, write_png

SHARED_FORMATS = SHARED_TESTDATA / "formats"


def shared(relative: str) -> Path:
    """A folder of ../shared/testdata/formats, or a clean skip when it is not there."""
    path = SHARED_FORMATS / relative
    if not path.exists():
        pytest.skip(f"../shared/testdata/formats/{relative} is not present")
    return path


def shapes_set(root: Path, count: int = 12, size: int = 48, seed: int = 3, classes_txt: bool = False) -> Path:
    """``datakit sample shapes`` output: images, COCO RLE instances, semantic and instance PNGs."""
    make_shapes(root, count=count, size=size, objects=(1, 4), seed=seed)
    if classes_txt:
        (root / "classes.txt").write_text("1 circle\n2 square\n3 triangle\n4 star\n")
    return root


def mixed_coco(shapes: Path, out: Path) -> Path:
    """A COCO data set with every feature the issue names, built from a shapes set.

    Sparse category ids with supercategories, polygons (some in two parts), compressed RLE,
    crowd regions as uncompressed RLE, custom attributes, and an image without annotations.
    """
    coco = json.loads((shapes / "annotations" / "instances.json").read_text())
    sparse = {1: 3, 2: 7, 3: 11, 4: 42}
    for cat in coco["categories"]:
        cat["id"] = sparse[cat["id"]]
        cat["supercategory"] = "round" if cat["name"] == "circle" else "angular"
    for n, ann in enumerate(coco["annotations"]):
        ann["category_id"] = sparse[ann["category_id"]]
        image = next(im for im in coco["images"] if im["id"] == ann["image_id"])
        mask = geometry.rle_to_mask(ann["segmentation"])
        if n % 3 == 0:
            parts, _ = geometry.mask_to_polygons(mask)
            if n % 6 == 0:
                parts = parts + [[1.0, 1.0, 4.0, 1.0, 4.0, 3.0]]  # a second, separate part
            ann["segmentation"] = parts
        elif n % 5 == 1:
            ann["iscrowd"] = 1
            ann["segmentation"] = uncompressed_rle(mask)
        if n % 4 == 0:
            ann["attributes"] = {"occluded": bool(n % 8), "source": "test"}
        assert image["width"] == mask.shape[1]
    last = coco["images"][-1]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != last]
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    (out / "images").symlink_to((shapes / "images").resolve())
    (out / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    return out


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    flat = mask.reshape(-1, order="F").astype(np.int64)
    counts, value, run = [], 0, 0
    for pixel in flat.tolist():
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Pixels of any COCO segmentation (polygons, compressed or uncompressed RLE) via pycocotools."""
    if isinstance(segmentation, list):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width)))
    rle = segmentation
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode()}
    return mask_utils.decode(rle)


def coco_by_name(path: Path) -> tuple[dict[str, dict], dict[str, list[dict]], list[dict]]:
    """Images by file_name, their annotations (in file order), and the categories of a COCO file."""
    data = json.loads(path.read_text())
    images = {im["file_name"]: im for im in data["images"]}
    name_of = {im["id"]: im["file_name"] for im in data["images"]}
    annotations: dict[str, list[dict]] = {name: [] for name in images}
    for ann in data["annotations"]:
        annotations[name_of[ann["image_id"]]].append(ann)
    return images, annotations, data["categories"]


def tiny_coco(root: Path, annotations: list[dict], images: list[dict] | None = None,
              categories: list[dict] | None = None, write_images: bool = True) -> Path:
    """A one-file COCO set with real 8x6 (default) PNG images under images/."""
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}]
    categories = categories if categories is not None else [{"id": 1, "name": "thing"}]
    if write_images:
        for im in images:
            name = im.get("file_name", "")
            if name and ".." not in name and not name.startswith("/"):
                write_png(root / "images" / name, width=im.get("width", 8), height=im.get("height", 6))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    path = root / "annotations" / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}, indent=1))
    return path


def two_image_coco(root: Path, names: tuple[str, str] = ("a.jpg", "a.png")) -> Path:
    """Two 30x20 images under images/ (by default one stem, two files), one square polygon each
    (boxes at x = 1 and x = 10), in one COCO file."""
    images = [{"id": i, "file_name": name, "width": 30, "height": 20} for i, name in enumerate(names, start=1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [x, x, 5, 5], "iscrowd": 0,
                    "segmentation": [[x, x, x + 5, x, x + 5, x + 5, x, x + 5]]}
                   for i, x in ((1, 1), (2, 10))]
    tiny_coco(root, annotations, images)
    return root


def exported_and_read_back(src: Path, fmt: str, out: Path) -> Any:
    """The manifest of ``src`` exported as ``fmt`` into ``out`` and read back (format detected)."""
    from datakit import export
    from datakit.convert import read_source
    from datakit.formats.base import ReadOptions

    export(read_source(src, None, ReadOptions()).manifest, fmt, out)
    return read_source(out, None, ReadOptions()).manifest


def boxes_by_file_name(manifest: Any) -> list[tuple[str, float, float]]:
    """(image file name, x, y) of every object: what must survive a round trip whatever the paths."""
    merged = manifest.annotations.merge(manifest.images[["id", "path"]], left_on="image_id", right_on="id")
    return sorted((path.rsplit("/", 1)[-1], float(x), float(y))
                  for path, x, y in zip(merged["path"], merged["bbox_x"], merged["bbox_y"]))
