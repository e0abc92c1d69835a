"""Prediction readers: a COCO results JSON, a folder of YOLO txt files, a folder of mask PNGs.

Each reader matches predictions to the manifest's images and categories (``truth.py`` has the
rules) and records every entry it cannot use in the ``Lint`` with its reason.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datakit.errors import DatakitError
from datakit.geometry import is_finite_number, polygon_problem, rle_problem
from datakit.metrics.lint import Lint
from datakit.metrics.truth import Truth, c_rle

KINDS = ("coco", "yolo", "masks")


@dataclass
class Detections:
    """Detections matched to the manifest: one row each, in file order."""

    image: list[str]                 # manifest image id
    category: list[str]              # category name
    boxes: np.ndarray                # x y w h, pixels (NaN rows when only a mask was given)
    score: np.ndarray
    rles: list[Any] | None = None    # pycocotools RLEs (bytes counts) when the file holds masks
    box_area: bool = True            # pycocotools' loadRes takes the area from the box when results have boxes
    kind: str = "coco"
    unmatched_images: int = 0        # images of the manifest with no predictions at all

    def __len__(self) -> int:
        return len(self.image)


@dataclass
class MaskFolder:
    files: dict[str, Path] = field(default_factory=dict)  # manifest image id -> PNG
    kind: str = "masks"


def detect_kind(path: Path) -> str:
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise DatakitError(f"{path}: predictions must be a COCO results .json file, or a folder of YOLO .txt "
                           "files or mask .png files")
    if not path.is_dir():
        raise DatakitError(f"{path}: no such predictions file or folder")
    txt = next(path.rglob("*.txt"), None)
    png = next(path.rglob("*.png"), None)
    if txt is not None and png is None:
        return "yolo"
    if png is not None and txt is None:
        return "masks"
    if txt is None and png is None:
        raise DatakitError(f"{path}: the folder holds no prediction files (YOLO .txt or mask .png)")
    raise DatakitError(f"{path}: the folder holds both .txt and .png files; pass the YOLO or the mask folder alone")


def read_predictions(path: Path, truth: Truth, lint: Lint) -> Detections | MaskFolder:
    kind = detect_kind(path)
    if kind == "coco":
        return read_coco_results(path, truth, lint)
    if kind == "yolo":
        return read_yolo(path, truth, lint)
    return read_mask_folder(path, truth, lint)


def read_coco_results(path: Path, truth: Truth, lint: Lint) -> Detections:
    from pycocotools import mask as mask_utils

    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise DatakitError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    except OSError as exc:
        raise DatakitError(f"{path}: cannot read ({exc.strerror})") from None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a whole COCO file of predictions: its annotations are the results
    if not isinstance(data, list):
        raise DatakitError(f"{path}: a COCO results file is a JSON list of {{image_id, category_id, bbox|segmentation, "
                           f"score}} objects, found {type(data).__name__}")
    if not data:
        lint.add_file_problem("the file holds no predictions (an empty list): nothing to score")
    fast = _clean_box_results(data, truth)
    if fast is not None:
        return fast
    category_of_id = truth.category_of_id
    has_zero = 0 in category_of_id
    first_box = next((d.get("bbox") for d in data if isinstance(d, dict)), None)
    box_area = isinstance(first_box, list) and first_box != []
    image: list[str] = []
    category: list[str] = []
    boxes: list[Any] = []
    scores: list[float] = []
    rles: list[Any] = []
    seen_ids: set[Any] = set()
    any_mask = any(isinstance(d, dict) and d.get("segmentation") not in (None, [], {}) for d in data)
    for n, d in enumerate(data):
        where = f"entry {n}"
        if not isinstance(d, dict):
            lint.add("entries that are not JSON objects", where)
            continue
        raw_image = d.get("image_id")
        try:
            image_id = truth.coco_ids.get(raw_image) if raw_image is not None else None
        except TypeError:
            image_id = None
        if isinstance(d.get("file_name"), str):
            named = _by_file_name(truth, d["file_name"])
            if image_id is not None and named != image_id:
                # an image_id numbered in another split's file (each is 1..N) names another image
                lint.add("prediction(s) whose image_id and file_name name different images"
                         + (f" (split {truth.split})" if truth.split else ""), f"{raw_image} {d['file_name']}")
                continue
            image_id = named
        if image_id is None and raw_image is not None and not is_finite_number(raw_image):
            lint.add("prediction(s) whose image_id is not a number (image_id must be an integer)",
                     f"{where}: found {_described(raw_image)}")
            continue
        if image_id is None and isinstance(raw_image, int) and raw_image in truth.repeated_coco_ids:
            lint.add("prediction(s) whose image_id repeats across splits (datakit's export numbers each split "
                     "file 1..N): pass --split, or name images by file_name", raw_image)
            continue
        if image_id is None:
            shown = raw_image if raw_image is not None else d.get("file_name")
            lint.add("prediction(s) for image ids that are not in the manifest"
                     + (f" (split {truth.split})" if truth.split else ""), shown)
            continue
        cat = d.get("category_id")
        name = category_of_id.get(cat) if is_finite_number(cat) else None
        if name is None:
            if cat == 0 and not has_zero:
                lint.add("prediction(s) with category id 0, which no category has (COCO ids start at 1; "
                         "0-based class indices shifted?)", where)
            else:
                lint.add("prediction(s) with category ids not in the manifest's category table", cat)
            continue
        score = d.get("score")
        if not is_finite_number(score):
            lint.add("prediction(s) without a finite numeric score", f"{where} score={score!r}")
            continue
        if "id" in d:
            try:
                if d["id"] in seen_ids:
                    lint.add("prediction(s) with a duplicate annotation id", d["id"])
                    continue
                seen_ids.add(d["id"])
            except TypeError:
                pass
        box = d.get("bbox")
        seg = d.get("segmentation")
        if box is not None and box != []:
            if not (isinstance(box, list) and len(box) == 4 and all(is_finite_number(v) for v in box)):
                lint.add("prediction(s) whose bbox is not 4 finite numbers (x, y, width, height; NaN?)",
                         f"{where} bbox={box!r}"[:80])
                continue
            if box[2] < 0 or box[3] < 0:
                lint.add("prediction(s) with a box of negative width or height", f"{where} bbox={box}")
                continue
        elif seg in (None, [], {}):
            lint.add("prediction(s) with neither a bbox nor a segmentation", where)
            continue
        rle = None
        if seg not in (None, [], {}):
            rle = _result_rle(seg, *truth.size(image_id))
            if isinstance(rle, str):
                lint.add(f"prediction(s) with {rle}", f"{where} on {truth.paths[image_id]}")
                continue
        elif any_mask:
            lint.add("prediction(s) without a segmentation in a file where others have one", where)
            continue
        if box is None or box == []:
            box = [float(v) for v in mask_utils.toBbox(rle)]
        image.append(image_id)
        category.append(name)
        boxes.append(box)
        scores.append(float(score))
        rles.append(rle)
    box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    matched = set(image)
    return Detections(image, category, box_array, np.asarray(scores, dtype=np.float64),
                      rles if any_mask else None, box_area=box_area, kind="coco",
                      unmatched_images=sum(1 for i in truth.images.index if i not in matched))


def _clean_box_results(data: list[Any], truth: Truth) -> Detections | None:
    """The common case checked in bulk: box results whose every field is valid. None when any
    entry needs a closer look (then the per-entry reader names each problem)."""
    if not data or set(map(type, data)) != {dict}:
        return None
    if any(d.get("segmentation") for d in data):
        return None
    coco_ids, category_of_id = truth.coco_ids, truth.category_of_id
    raw_images = [d.get("image_id") for d in data]
    raw_cats = [d.get("category_id") for d in data]
    raw_scores = [d.get("score") for d in data]
    raw_boxes = [d.get("bbox") for d in data]
    if set(map(type, raw_images)) != {int} or set(map(type, raw_cats)) != {int}:
        return None
    if not set(map(type, raw_scores)) <= {int, float} or set(map(type, raw_boxes)) != {list}:
        return None
    if set(map(len, raw_boxes)) != {4} or not set(map(type, (v for b in raw_boxes for v in b))) <= {int, float}:
        return None
    image = [coco_ids.get(i) for i in raw_images]
    category = [category_of_id.get(c) for c in raw_cats]
    if None in image or None in category:
        return None
    names = [d.get("file_name") for d in data]
    if any(n is not None for n in names):  # both given: they must name the same image
        if set(map(type, names)) != {str} or any(_by_file_name(truth, n) != i for n, i in zip(names, image)):
            return None
    ids = [d["id"] for d in data if "id" in d]
    try:
        if len(set(ids)) != len(ids):
            return None
    except TypeError:
        return None
    boxes = np.asarray(raw_boxes, dtype=np.float64)
    score = np.asarray(raw_scores, dtype=np.float64)
    if not (np.isfinite(boxes).all() and np.isfinite(score).all() and (boxes[:, 2:] >= 0).all()):
        return None
    matched = set(image)
    return Detections(image, category, boxes, score, None, box_area=True, kind="coco",
                      unmatched_images=sum(1 for i in truth.images.index if i not in matched))


def _described(value: Any) -> str:
    """A JSON value with its type, for a message: "the string '4'"."""
    kind = {str: "the string", list: "the list", dict: "the object", bool: "the boolean"}.get(type(value), "the value")
    return f"{kind} {value!r}"


def _by_file_name(truth: Truth, name: str) -> str | None:
    return truth.by_name.get(name) or truth.by_name.get(os.path.basename(name))


def _result_rle(seg: Any, h: int, w: int) -> Any:
    """A result's segmentation as a C RLE, or a string saying what is wrong with it."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and "counts" in seg):
            return "an RLE without 'size' and 'counts'"
        if [int(size[0]), int(size[1])] != [h, w]:
            return f"a mask of the wrong size ({size[0]}x{size[1]} for a {h}x{w} image, height x width)"
        # pycocotools decodes malformed counts into garbage masks without a word: check them first
        problem = rle_problem(seg, h, w)
        if problem is not None:
            return f"an unusable RLE mask ({problem})"
        try:
            return c_rle(seg, h, w)
        except Exception:  # noqa: BLE001 - pycocotools raises bare exceptions on bad counts
            return "unreadable RLE counts"
    if isinstance(seg, list) and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
        problem = next((polygon_problem(p) for p in seg if polygon_problem(p)), None)
        if problem is not None:
            return f"a polygon that {problem}"
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return "a segmentation that is neither an RLE object nor a list of polygons"


def read_yolo(path: Path, truth: Truth, lint: Lint) -> Detections:
    """``class cx cy w h conf`` (normalized) per line, or ``class x1 y1 ... xn yn conf`` for masks."""
    from pycocotools import mask as mask_utils

    category_of_index = truth.category_of_index
    image: list[str] = []
    category: list[str] = []
    boxes: list[list[float]] = []
    scores: list[float] = []
    polygons: list[Any] = []
    files = sorted(path.rglob("*.txt"))
    for file in files:
        image_id = truth.image_of_stem(file.stem)
        shown = file.relative_to(path).as_posix()
        if image_id is None:
            lint.add("prediction file(s) whose stem matches no image of the manifest"
                     + (f" (split {truth.split})" if truth.split else ""), shown)
            continue
        h, w = truth.size(image_id)
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{shown}:{number}"
            try:
                values = [float(p) for p in parts]
            except ValueError:
                lint.add("line(s) that are not numbers", where)
                continue
            if not all(math.isfinite(v) for v in values):
                lint.add("line(s) with NaN or infinite values", where)
                continue
            if len(values) == 5 or (len(values) >= 7 and len(values) % 2 == 1):
                lint.add("line(s) without a confidence (expected 'class cx cy w h conf' as Ultralytics' "
                         "save_conf writes)", where)
                continue
            if len(values) < 6 or len(values) % 2 != 0:
                lint.add("line(s) that are neither 'class cx cy w h conf' nor 'class x1 y1 ... conf'", where)
                continue
            index = values[0]
            name = category_of_index.get(int(index)) if index == int(index) else None
            if name is None:
                lint.add(f"line(s) with a class index outside 0..{len(category_of_index) - 1}", f"{where} class {parts[0]}")
                continue
            if len(values) == 6:
                cx, cy, bw, bh = values[1:5]
                if bw < 0 or bh < 0:
                    lint.add("line(s) with a box of negative width or height", where)
                    continue
                boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h])
                polygons.append(None)
            else:
                flat = [v * (w if i % 2 == 0 else h) for i, v in enumerate(values[1:-1])]
                problem = polygon_problem(flat)
                if problem is not None:
                    lint.add("line(s) with an unusable polygon", f"{where}: {problem}"[:100])
                    continue
                polygons.append(flat)
                boxes.append([float(v) for v in mask_utils.toBbox(mask_utils.merge(mask_utils.frPyObjects([flat], h, w)))])
            image.append(image_id)
            category.append(name)
            scores.append(values[-1])
    any_mask = any(p is not None for p in polygons)
    rles = None
    if any_mask:
        rles = []
        for image_id, poly, box in zip(image, polygons, boxes):
            h, w = truth.size(image_id)
            x, y, bw, bh = box
            flat = poly if poly is not None else [x, y, x, y + bh, x + bw, y + bh, x + bw, y]
            rles.append(mask_utils.merge(mask_utils.frPyObjects([flat], h, w)))
    matched = set(image)
    return Detections(image, category, np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                      np.asarray(scores, dtype=np.float64), rles, box_area=not any_mask, kind="yolo",
                      unmatched_images=sum(1 for i in truth.images.index if i not in matched))


def read_mask_folder(path: Path, truth: Truth, lint: Lint) -> MaskFolder:
    folder = MaskFolder()
    for file in sorted(path.rglob("*.png")):
        image_id = truth.image_of_stem(file.stem)
        if image_id is None:
            lint.add("mask file(s) whose stem matches no image of the manifest"
                     + (f" (split {truth.split})" if truth.split else ""), file.relative_to(path).as_posix())
            continue
        folder.files[image_id] = file
    return folder
