"""LabelMe: one JSON per image with ``shapes`` (rectangles, polygons) and image-level ``flags``.

Read: every ``*.json`` under the folder that has LabelMe's keys (one that fails to parse is an
error naming file, line and column); ``imagePath`` is relative to the JSON file's folder and must
stay inside the data set. Image files no JSON names are kept without objects, each one listed. Rectangle points come in any order (the box is
their min/max); polygons need at least 3 points; shapes with the same label and ``group_id``
are one object (LabelMe's way to draw an object in parts). Other shape types (circle, line,
point, mask) are skipped and reported. LabelMe's reserved labels are not classes: ``__ignore__``
marks a region to ignore and ``_background_`` the background; such shapes are dropped (as
LabelMe's own COCO export does) and each is reported. An image's label is its single true flag; flags are also
categories, so a LabelMe classification set reads as one.

Written: each image next to its JSON, at the image's path (shared leading folder removed); the
JSON is named after the image (``a.json``), with the suffix kept where two images differ only in
suffix (``a.jpg.json``, ``a.png.json``).
Polygons stay polygons (one shape per part, sharing a group_id), box-only objects become
rectangles, RLE and mask files become polygons (what that loses is reported).
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

from datakit import geometry
from datakit.errors import DatakitError
from datakit.formats.base import (
    AnnotationTable,
    CategoryTable,
    ImageTable,
    ReadOptions,
    ReadResult,
    Report,
    WriteOptions,
    WriteResult,
    build_manifest,
    export_images,
    lose_image_fields,
    export_names,
    output_path,
    place_image,
    relative_to_root,
    safe_relative,
    stem_names,
)
from datakit.formats.coco import load_json
from datakit.imageinfo import IMAGE_EXTENSIONS
from datakit.manifest import Manifest
from datakit.regular_files import open_regular_file, special_kind_at

NAME = "labelme"
DESCRIPTION = "LabelMe JSON per image (rectangles, polygons, flags)"
LABELME_VERSION = "5.0.1"


def _json_files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*.json") if not any(part.startswith(".") for part in p.relative_to(src).parts))


def _head(path: Path) -> str:
    try:
        with open_regular_file(path) as fh:
            return fh.read(65536).decode("utf-8", "ignore")
    except OSError:
        return ""


def _looks_like_labelme(path: Path) -> bool:
    """Detection: a whole LabelMe file's keys in its first 64 KB."""
    head = _head(path)
    return '"shapes"' in head and ('"imagePath"' in head or '"imageHeight"' in head)


def _meant_for_labelme(path: Path) -> bool:
    """Reading: any of LabelMe's own keys, so a file cut short (or hand-edited) inside its shapes is
    read, and fails naming file, line and column, instead of being passed over with its image."""
    head = _head(path)
    return any(f'"{key}"' in head for key in ("shapes", "imagePath", "imageHeight", "imageWidth")) or (
        '"version"' in head and '"flags"' in head)


def detect(src: Path) -> bool:
    if not src.is_dir():
        return False
    # bounded: detection runs before every folder ingest and must not list a big tree, so it looks
    # at the top folder and the first entries of the first sub-folders (--format labelme always works)
    if any(_looks_like_labelme(p) for p in sorted(src.glob("*.json"))[:5]):
        return True
    folders = [e.path for e in _first_entries(src, _DETECT_ENTRIES) if e.is_dir() and not e.name.startswith(".")]
    for folder in folders[:_DETECT_FOLDERS]:
        for entry in _first_entries(Path(folder), _DETECT_ENTRIES):
            if entry.name.endswith(".json") and entry.is_file():
                return _looks_like_labelme(Path(entry.path))
    return False


_DETECT_FOLDERS, _DETECT_ENTRIES = 20, 1000


def _first_entries(folder: Path, limit: int) -> list[os.DirEntry[str]]:
    entries = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                entries.append(entry)
                if len(entries) >= limit:
                    break
    except OSError:
        return []
    return entries


def read(src: Path, options: ReadOptions) -> ReadResult:
    src = Path(src)
    if not src.is_dir():
        raise DatakitError(f"{src}: not a folder of LabelMe JSON files")
    report = Report(options.on_invalid)
    categories = CategoryTable(report)
    images = ImageTable()
    annotations = AnnotationTable()
    candidates = _json_files(src)
    for path in candidates:
        kind = special_kind_at(path)
        if kind:
            report.skip(relative_to_root(path, src), "", f"not a regular file ({kind}): never opened, so the "
                                                          "image it may describe is not read")
    files = [p for p in candidates if _meant_for_labelme(p)]
    if not files:
        raise DatakitError(f"{src}: no LabelMe JSON files (with 'shapes' and 'imagePath') found")
    for path in files:
        shown = relative_to_root(path, src)
        data = load_json(path, shown)
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
            raise DatakitError(f"{shown}: a LabelMe file is a JSON object with a 'shapes' list")
        folder = posixpath.dirname(shown)
        image_name = data.get("imagePath") or _image_beside(path)
        image, problem = safe_relative(str(image_name), folder)
        if problem:
            report.skip(shown, "imagePath", f"{image_name!r} {problem}; refused, not read")
            continue
        if data.get("imageData") and not (src / image).is_file():
            report.change(shown, "imageData", f"{image} is not on disk, only embedded in imageData; datakit reads "
                                              f"image files: save it as {image} (labelme_export_json does)")
        label = _label_from_flags(data.get("flags"), shown, categories, report)
        width, height = data.get("imageWidth"), data.get("imageHeight")
        images.add(image, width if isinstance(width, int) else None, height if isinstance(height, int) else None,
                   label=label, where=shown)
        _read_shapes(data["shapes"], shown, image, categories, annotations, report, (height, width))
    _add_images_without_json(src, images, report, options)
    manifest = build_manifest(src, images, annotations, categories.finish(), report, options,
                              source={"format": NAME})
    return ReadResult(manifest, report, NAME, [str(p) for p in files])


def _add_images_without_json(src: Path, images: ImageTable, report: Report, options: ReadOptions) -> None:
    """Image files no JSON names: kept without objects (LabelMe writes no JSON for an image nobody
    annotated; YOLO keeps its images without a label file the same way), each one listed; files the
    folder scan refuses (links leaving the source, FIFOs) are listed as skipped."""
    from datakit.manifest import outside_allowed
    from datakit.scan import BAD_NAME_REASON, scan_images

    named = set(images.path)
    found, refused = scan_images(src, allow_outside=outside_allowed(options.allow_outside))
    for entry in refused:
        if entry["path"] not in named:
            report.skip(entry["path"], "", entry["reason"])
    for file in found:
        if file.path in named:
            continue
        if file.bad_name:
            report.skip(file.path, "", BAD_NAME_REASON)
            continue
        images.add(file.path, where=file.path)
        report.change(file.path, "", "no LabelMe JSON names this image: kept without objects")


# LabelMe's reserved labels (its labels.txt starts with them) -> why a shape with one is not an object
_NOT_CLASSES = {
    "__ignore__": "label __ignore__ marks a region to ignore, not a class (LabelMe's convention); dropped",
    "_background_": "label _background_ is LabelMe's background, not a class; dropped",
}


def _image_beside(path: Path) -> str:
    for candidate in sorted(path.parent.glob(path.stem + ".*")):
        if candidate.suffix.lower() in IMAGE_EXTENSIONS:
            return candidate.name
    return path.stem + ".jpg"


def _label_from_flags(flags: Any, shown: str, categories: CategoryTable, report: Report) -> str | None:
    if not isinstance(flags, dict) or not flags:
        return None
    names = [k for k in flags if not str(k).startswith("__")]
    for name in names:
        categories.add(str(name))
    true = [str(k) for k in names if flags[k] is True]
    if len(true) > 1:
        report.change(shown, "flags", f"{len(true)} flags are true ({', '.join(true)}); one label per image, none set")
        return None
    return true[0] if true else None


def _points(shape: dict[str, Any]) -> list[float] | None:
    points = shape.get("points")
    if not isinstance(points, list):
        return None
    flat: list[float] = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and all(isinstance(v, (int, float)) for v in point)):
            return None
        flat.extend(float(v) for v in point)
    return flat


def _read_shapes(shapes: list[Any], shown: str, image: str, categories: CategoryTable,
                 annotations: AnnotationTable, report: Report, size: tuple[Any, Any] = (None, None)) -> None:
    # (label, group_id) -> one object; ungrouped shapes are objects of their own
    objects: dict[Any, dict[str, Any]] = {}
    for j, shape in enumerate(shapes):
        where = f"shapes[{j}]"
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            report.invalid(shown, where, "a shape needs a string 'label'")
            continue
        label, kind = shape["label"], shape.get("shape_type") or "polygon"
        where = f"shapes[{j}] ({label})"
        if label in _NOT_CLASSES:
            report.change(shown, where, _NOT_CLASSES[label])
            continue
        flat = _points(shape)
        if flat is None:
            report.invalid(shown, where, "'points' must be a list of [x, y] pairs")
            continue
        if kind == "rectangle":
            if len(flat) != 4:
                report.invalid(shown, where, f"a rectangle needs 2 points, found {len(flat) // 2}")
                continue
            xs, ys = flat[0::2], flat[1::2]
            part = None
            box = geometry.xyxy_to_xywh(min(xs), min(ys), max(xs), max(ys))
        elif kind == "polygon":
            problem = geometry.polygon_problem(flat)
            if problem:
                report.invalid(shown, where, f"polygon {problem}")
                continue
            part = flat
            box = geometry.polygons_box([flat])
        else:
            report.skip(shown, where, f"shape_type {kind!r} is not supported (rectangle and polygon are)")
            continue
        group = shape.get("group_id")
        key = (label, group) if group is not None else (None, j)
        obj = objects.setdefault(key, {"label": label, "parts": [], "boxes": [], "where": where, "attributes": {}})
        obj["boxes"].append(box)
        if part is not None:
            obj["parts"].append(part)
        if group is not None:
            obj["attributes"]["group_id"] = group
        for key_name in ("description", "flags"):
            if shape.get(key_name):
                obj["attributes"][key_name] = shape[key_name]
    for obj in objects.values():
        categories.add(obj["label"])
        boxes = obj["boxes"]
        x1 = min(b[0] for b in boxes)
        y1 = min(b[1] for b in boxes)
        x2 = max(b[0] + b[2] for b in boxes)
        y2 = max(b[1] + b[3] for b in boxes)
        parts = obj["parts"]
        # a polygon's own pixels (as COCO counts them); an object with a rectangle among its shapes keeps its box's
        area = geometry.polygons_area(parts, *size) if parts and len(parts) == len(boxes) else None
        annotations.add(image, obj["label"], geometry.xyxy_to_xywh(x1, y1, x2, y2), area=area,
                        kind="polygon" if parts else None, segmentation=parts or None,
                        attributes=obj["attributes"] or None, file=shown, where=obj["where"])


# ---------------------------------------------------------------------------------------------
# writing


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    lose_image_fields(images, report, "LabelMe", splits=True)  # labels are flags
    names = export_names([im.path for im in images])
    # a.jpg and a.png in one folder would both write a.json; those keep the suffix (a.jpg.json)
    json_stems = stem_names(list(names.values()))
    category_names = [c["name"] for c in sorted(manifest.categories, key=lambda c: int(c["id"]))]
    with_flags = any(im.label for im in images)
    root = manifest.root()
    files = n_annotations = 0
    for im in images:
        name = names[im.path]
        if not place_image(manifest.image_path(im.path), output_path(out, name), options.images):
            report.skip(im.path, "", "image file not found; JSON written, image not copied")
        files += options.images != "none"
        shapes: list[dict[str, Any]] = []
        for k, ann in enumerate(im.annotations, start=1):
            shapes.extend(_shapes(ann, im, root, report, f"object {k} ({ann['category']})", k))
            n_annotations += 1
        data = {
            "version": LABELME_VERSION,
            "flags": {n: n == im.label for n in category_names} if with_flags else {},
            "shapes": shapes,
            "imagePath": posixpath.basename(name),
            "imageData": None,
            "imageHeight": im.height,
            "imageWidth": im.width,
        }
        target = output_path(out, json_stems[name] + ".json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2), encoding="utf-8")
        files += 1
    return WriteResult(out, NAME, len(images), n_annotations, files, report)


def _shapes(ann: dict[str, Any], im: Any, root: Path, report: Report, where: str, k: int) -> list[dict[str, Any]]:
    attrs = ann["attributes"]
    base = {"label": ann["category"], "description": attrs.get("description", ""), "flags": attrs.get("flags", {})}
    if ann["iscrowd"]:
        report.lose(im.path, where, "iscrowd=1 has no LabelMe equivalent; written as an ordinary object")
    kind = ann["kind"]
    if kind is None:
        x1, y1, x2, y2 = geometry.xywh_to_xyxy(ann["bbox"])
        return [{**base, "points": [[x1, y1], [x2, y2]], "group_id": attrs.get("group_id"), "shape_type": "rectangle"}]
    if kind == "polygon":
        parts = ann["segmentation"]
    else:
        mask = geometry.segmentation_mask(kind, ann["segmentation"], im.height, im.width, root)
        parts, lost = geometry.mask_to_polygons(mask)
        if lost:
            report.lose(im.path, where, f"mask to polygon: {lost}")
        if not parts:
            report.lose(im.path, where, "mask too small for a polygon; written as its box")
            x1, y1, x2, y2 = geometry.xywh_to_xyxy(ann["bbox"])
            return [{**base, "points": [[x1, y1], [x2, y2]], "group_id": None, "shape_type": "rectangle"}]
    group = attrs.get("group_id", k if len(parts) > 1 else None)
    return [{**base, "points": [[p[i], p[i + 1]] for i in range(0, len(p), 2)], "group_id": group,
             "shape_type": "polygon"} for p in parts]
