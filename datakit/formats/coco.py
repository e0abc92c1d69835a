"""COCO instances JSON: boxes, polygons, RLE (compressed and uncompressed), iscrowd.

Layouts read: a single ``instances*.json`` file, or a folder with ``annotations/*.json`` (one file
per split: ``instances_train.json``, ``instances_val2017.json``, ...). Images are looked up under
``images/<subset>/``, ``images/``, ``<subset>/`` or the folder itself, whichever holds the files
(``ReadOptions.image_dir`` overrides). Category ids are kept as the file numbers them (sparse ids
included); names are the key when several files are merged.

Layout written: ``annotations/instances_<split>.json`` (``instances.json`` for unsplit images)
and ``images/<split>/<file_name>``. Segmentations stay in their kind: polygons as polygons, RLE
as compressed RLE, mask files as compressed RLE. Box-only objects get ``"segmentation": []``.
"""

from __future__ import annotations

import json
import re
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
    by_split,
    export_images,
    lose_image_fields,
    export_names,
    object_categories,
    output_path,
    place_image,
    relative_to_root,
    safe_relative,
    target_category_ids,
)
from datakit.manifest import Manifest
from datakit.regular_files import open_regular_file, read_regular_file

NAME = "coco"
DESCRIPTION = "COCO instances JSON (boxes, polygons, RLE)"
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "minival": "val", "test": "test", "testing": "test", "test-dev": "test"}
_PEEK_BYTES = 65536
_MAX_SIDE = 2**31 - 1  # larger sides do not fit the manifest's integer columns (and no image has them)


# ---------------------------------------------------------------------------------------------
# detection


_COCO_KEY = re.compile(rb'"(?:images|annotations)"\s*:\s*\[')


def _looks_like_coco(path: Path) -> bool:
    try:
        with open_regular_file(path) as fh:
            head = fh.read(_PEEK_BYTES).decode("utf-8", "ignore").lstrip()
            if not head.startswith("{") or '"shapes"' in head:
                # LabelMe files are JSON objects too; they have "shapes" and no "images" list
                return False
            if '"images"' in head or '"annotations"' in head:
                return True
            # a large "info" or "licenses" block can push the lists past the peek (a 50 MB file
            # was missed): stream the rest in chunks, overlapping so a key split across two is seen
            fh.seek(0)
            tail = b""
            while chunk := fh.read(1 << 22):
                if _COCO_KEY.search(tail + chunk):
                    return True
                tail = chunk[-64:]
    except OSError:
        return False
    return False


def annotation_files(src: Path) -> list[Path]:
    """The COCO files in ``src`` (a file or a folder); instances files first when there are others."""
    if src.is_file():
        return [src] if src.suffix.lower() == ".json" and _looks_like_coco(src) else []
    if not src.is_dir():
        return []
    found = [p for p in sorted((src / "annotations").glob("*.json")) + sorted(src.glob("*.json")) if _looks_like_coco(p)]
    instances = [p for p in found if p.name.startswith("instances")]
    return instances or found


def detect(src: Path) -> bool:
    return bool(annotation_files(src))


# ---------------------------------------------------------------------------------------------
# reading


def load_json(path: Path, shown: str) -> Any:
    """Parse a JSON file; a syntax error names file, line and column."""
    try:
        return json.loads(read_regular_file(path))
    except RecursionError:
        raise DatakitError(f"{shown}: JSON nested too deeply to read (over ~1000 levels); not an annotation file") from None
    except json.JSONDecodeError as exc:
        raise DatakitError(f"{shown}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    except OSError as exc:
        raise DatakitError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DatakitError(f"{shown}: not UTF-8 text, so not a JSON file") from None
    except OSError as exc:
        raise DatakitError(f"{shown}: cannot read ({exc.strerror})") from None


def subset_of(path: Path) -> str:
    """The subset a file name states: instances_val2017.json -> 'val2017'; instances.json -> ''."""
    stem = path.stem
    for prefix in ("instances_", "instances", "image_info_"):
        if stem.startswith(prefix):
            return stem[len(prefix):]
    return stem


def split_of(subset: str) -> str | None:
    return _SPLIT_ALIASES.get(re.sub(r"\d+$", "", subset.lower()))


def _image_folder(root: Path, subset: str, names: list[str], options: ReadOptions) -> str:
    """Folder (relative to root) holding the images this file names: the one where most exist."""
    if options.image_dir is not None:
        return options.image_dir.strip("/")
    candidates = [f"images/{subset}", "images", subset, ""] if subset else ["images", ""]
    probe = names[:20]
    best, best_hits = None, 0
    for folder in candidates:
        base = root / folder if folder else root
        if not base.is_dir():
            continue
        hits = sum((base / n).is_file() for n in probe)
        if hits > best_hits:
            best, best_hits = folder, hits
    if best is not None:
        return best
    return f"images/{subset}" if subset and (root / "images" / subset).is_dir() else ("images" if (root / "images").is_dir() else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# checked with set(map(type, values)), which runs in C: these checks meet every annotation
def read(src: Path, options: ReadOptions) -> ReadResult:
    src = Path(src)
    files = annotation_files(src)
    if not files:
        raise DatakitError(f"{src}: no COCO annotation file found (looked for annotations/*.json and *.json)")
    if src.is_file():
        root = src.parent.parent if src.parent.name == "annotations" else src.parent
    else:
        root = src
    report = Report(options.on_invalid)
    categories = CategoryTable(report)
    images = ImageTable()
    annotations = AnnotationTable()
    file_ranges: list[tuple[str, int, int]] = []
    header_extra: dict[str, Any] = {}
    for path in files:
        shown = relative_to_root(path, root)
        start = len(annotations)
        data = load_json(path, shown)
        _read_file(data, shown, subset_of(path), root, options, report, categories, images, annotations)
        file_ranges.append((subset_of(path) or path.stem, start, len(annotations)))
        if not header_extra:
            header_extra = {k: data[k] for k in ("info", "licenses") if k in data}
    _prefix_colliding_ids(annotations, file_ranges)
    manifest = build_manifest(
        root, images, annotations, categories.finish(), report, options,
        source={"format": NAME, "files": [relative_to_root(p, root) for p in files]},
        extra={"coco": header_extra} if header_extra else None,
    )
    return ReadResult(manifest, report, NAME, [str(p) for p in files])


def _read_file(data: Any, shown: str, subset: str, root: Path, options: ReadOptions, report: Report,
               categories: CategoryTable, images: ImageTable, annotations: AnnotationTable) -> None:
    if not isinstance(data, dict):
        raise DatakitError(f"{shown}: a COCO file is a JSON object with 'images', 'annotations' and 'categories'")
    image_list = data.get("images")
    ann_list = data.get("annotations", [])
    cat_list = data.get("categories", [])
    for key, value in (("images", image_list), ("annotations", ann_list), ("categories", cat_list)):
        if not isinstance(value, list):
            raise DatakitError(f"{shown}: '{key}' must be a list, found {type(value).__name__}")
    split = split_of(subset)
    if subset and split is None and subset != "default":
        report.change(shown, "", f"subset {subset!r} is not train, val or test; its images have no split")

    cat_names: dict[Any, str] = {}
    for i, cat in enumerate(cat_list):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise DatakitError(f"{shown}: categories[{i}]: needs an integer 'id' and a string 'name', found {cat!r}")
        if cat["id"] in cat_names:
            raise DatakitError(f"{shown}: categories[{i}]: id {cat['id']} is used twice")
        if cat["name"] in cat_names.values():
            raise DatakitError(f"{shown}: categories[{i}]: name {cat['name']!r} is used twice; categories are matched by name")
        cat_names[cat["id"]] = categories.add(cat["name"], cat["id"], shown, supercategory=cat.get("supercategory"))

    names = [im.get("file_name") for im in image_list if isinstance(im, dict) and isinstance(im.get("file_name"), str)]
    folder = _image_folder(root, subset, names, options)
    image_paths: dict[Any, str] = {}
    image_sizes: dict[Any, tuple[int | None, int | None]] = {}
    refused: set[Any] = set()
    for i, im in enumerate(image_list):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DatakitError(f"{shown}: images[{i}]: needs 'id' and a string 'file_name', found {str(im)[:120]}")
        image_id = im["id"]
        if image_id in image_paths or image_id in refused:
            raise DatakitError(f"{shown}: images[{i}]: image id {image_id!r} is used twice")
        where = f"images[{i}] (id {image_id})"
        path, problem = safe_relative(im["file_name"], folder)
        if problem:
            report.skip(shown, where, f"file_name {im['file_name']!r} {problem}; refused, not read")
            refused.add(image_id)
            continue
        width, height = im.get("width"), im.get("height")
        for name, value in (("width", width), ("height", height)):
            if _is_int(value) and value > _MAX_SIDE:
                report.change(shown, where, f"{name} {value} is not a plausible image size; the file's own size is used")
        width = width if _is_int(width) and 0 < width <= _MAX_SIDE else None
        height = height if _is_int(height) and 0 < height <= _MAX_SIDE else None
        image_paths[image_id] = path
        image_sizes[image_id] = (width, height)
        images.add(path, width, height, split=split, where=f"{shown}: {where}", source_id=str(image_id))

    skipped_for_refused = 0
    for i, ann in enumerate(ann_list):
        if not isinstance(ann, dict):
            raise DatakitError(f"{shown}: annotations[{i}]: must be an object, found {type(ann).__name__}")
        aid = ann.get("id")
        where = f"annotations[{i}] (id {aid})"
        image_id = ann.get("image_id")
        path = image_paths.get(image_id)
        if path is None:
            if image_id in refused:
                skipped_for_refused += 1
                continue
            report.invalid(shown, where, f"image id {image_id!r} is not in 'images'")
            continue
        cid = ann.get("category_id")
        name = cat_names.get(cid)
        if name is None:
            report.invalid(shown, where, f"unknown category id {cid!r}")
            continue
        width, height = image_sizes[image_id]
        parsed = _segmentation(ann.get("segmentation"), width, height, shown, where, report)
        if parsed is False:
            continue
        kind, segmentation = parsed  # type: ignore[misc]
        box = ann.get("bbox")
        if isinstance(box, list) and len(box) == 4 and all(geometry.is_finite_number(v) for v in box):
            box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        elif box is None and kind is not None:
            box = geometry.polygons_box(segmentation) if kind == "polygon" else geometry.rle_box(segmentation)
        else:
            report.invalid(shown, where, f"bbox must be [x, y, width, height] of finite numbers, found {box!r}")
            continue
        area = ann.get("area")
        if not geometry.is_finite_number(area):
            area = _area(kind, segmentation, box, width, height)
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            report.invalid(shown, where, f"iscrowd must be 0 or 1, found {crowd!r}")
            continue
        if kind == "rle":
            # the manifest's JSON text, built directly: json.dumps of the counts string alone is cheaper
            segmentation = f'{{"size": [{segmentation["size"][0]}, {segmentation["size"][1]}], ' \
                           f'"counts": {json.dumps(segmentation["counts"])}}}'
        attributes = ann.get("attributes")
        annotations.add(
            path, name, box, id=None if aid is None else str(aid), area=float(area), iscrowd=int(crowd), kind=kind,
            segmentation=segmentation, attributes=attributes if isinstance(attributes, dict) else None,
            file=shown, where=where,
        )
    if skipped_for_refused:
        report.skip(shown, "", f"{skipped_for_refused} annotation(s) of refused images skipped")


def _segmentation(seg: Any, width: int | None, height: int | None, shown: str, where: str,
                  report: Report) -> tuple[str | None, Any] | bool:
    """(kind, value) for the manifest, (None, None) for box-only, False to drop the annotation."""
    if seg is None or seg == [] or seg == {}:
        return (None, None)
    if isinstance(seg, list):
        parts = []
        for j, part in enumerate(seg):
            problem = geometry.polygon_problem(part)
            if problem is None:
                parts.append(part)
                continue
            if report.policy == "clip":
                report.skip(shown, where, f"polygon part {j} {problem}; part dropped")
            else:
                report.invalid(shown, where, f"polygon part {j} {problem}")
                return False
        return ("polygon", parts) if parts else (None, None)
    if isinstance(seg, dict):
        problem = geometry.rle_problem(seg, height, width)
        if problem:
            report.invalid(shown, where, problem)
            return False
        if isinstance(seg["counts"], list):
            return ("rle", geometry.compress_rle(seg))
        return ("rle", {"size": seg["size"], "counts": seg["counts"]})
    report.invalid(shown, where, f"segmentation must be a list of polygons or an RLE object, found {type(seg).__name__}")
    return False


def _area(kind: str | None, segmentation: Any, box: tuple[float, ...], width: int | None, height: int | None) -> float:
    if kind == "rle":
        return geometry.rle_area(segmentation)
    if kind == "polygon":
        return geometry.polygons_area(segmentation, height, width)
    return float(box[2] * box[3])


def _prefix_colliding_ids(annotations: AnnotationTable, ranges: list[tuple[str, int, int]]) -> None:
    """Annotation ids are unique per COCO file, not across files: prefix them when files collide."""
    if len(ranges) < 2:
        return
    seen: set[str] = set()
    collide = False
    for _, start, end in ranges:
        ids = {i for i in annotations.id[start:end] if i is not None}
        if ids & seen:
            collide = True
            break
        seen |= ids
    if not collide:
        return
    for label, start, end in ranges:
        for k in range(start, end):
            if annotations.id[k] is not None:
                annotations.id[k] = f"{label}:{annotations.id[k]}"


# ---------------------------------------------------------------------------------------------
# writing


def _annotation_ids(images: list[Any]) -> list[int]:
    """COCO ids for a file's annotations: the manifest's numbers when unique and positive."""
    raw = [str(a["id"]).rsplit(":", 1)[-1] for im in images for a in im.annotations]
    if all(r.isdigit() and int(r) > 0 for r in raw) and len(set(raw)) == len(raw):
        return [int(r) for r in raw]
    return list(range(1, len(raw) + 1))


def _image_ids(images: list[Any], file: str, report: Report) -> list[int]:
    """COCO image ids for one file: the source ids when every image has a unique positive one."""
    raw = [im.source_id for im in images]
    if raw and all(r is not None and r.isdigit() and int(r) > 0 for r in raw) and len(set(raw)) == len(raw):
        return [int(r) for r in raw]
    if any(r is not None for r in raw):
        report.change(file, "", "image ids renumbered 1..N: the source ids are not unique positive integers "
                      "for every image of this file; match images by file_name")
    return list(range(1, len(images) + 1))


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    lose_image_fields(images, report, "COCO", labels=True)  # splits are files: instances_<split>.json
    categories = object_categories(manifest.categories, images, report, "coco")
    ids = target_category_ids(categories, "keep_nonzero", report, "COCO category ids")
    categories = [{"id": ids[c["name"]], "name": c["name"], "supercategory": c.get("supercategory", "")}
                  for c in sorted(categories, key=lambda c: int(c["id"]))]
    root = manifest.root()
    header = (manifest.extra or {}).get("coco", {})
    files = n_images = n_annotations = 0
    for split, group in by_split(images):
        names = export_names([im.path for im in group])
        folder = f"images/{split}" if split else "images"
        ann_ids = iter(_annotation_ids(group))
        coco_images: list[dict[str, Any]] = []
        coco_annotations: list[dict[str, Any]] = []
        file_name = f"annotations/instances_{split}.json" if split else "annotations/instances.json"
        for number, im in zip(_image_ids(group, file_name, report), group):
            coco_images.append({"id": number, "file_name": names[im.path], "width": im.width, "height": im.height})
            if options.images != "none":
                if not place_image(manifest.image_path(im.path), output_path(out, f"{folder}/{names[im.path]}"), options.images):
                    report.skip(im.path, "", "image file not found; annotations written, image not copied")
                files += 1
            for ann in im.annotations:
                entry: dict[str, Any] = {
                    "id": next(ann_ids), "image_id": number, "category_id": ids[ann["category"]],
                    "bbox": list(ann["bbox"]), "area": ann["area"], "iscrowd": ann["iscrowd"],
                    "segmentation": _coco_segmentation(ann, im, root),
                }
                if ann["attributes"]:
                    entry["attributes"] = ann["attributes"]
                coco_annotations.append(entry)
        data = {**{k: v for k, v in header.items() if k in ("info", "licenses")},
                "images": coco_images, "annotations": coco_annotations, "categories": categories}
        target = output_path(out, file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # one json.dumps call: json.dump to a file runs the pure-Python encoder, ~5x slower
        target.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        files += 1
        n_images += len(coco_images)
        n_annotations += len(coco_annotations)
    return WriteResult(out, NAME, n_images, n_annotations, files, report)


def _coco_segmentation(ann: dict[str, Any], image: Any, root: Path) -> Any:
    kind, seg = ann["kind"], ann["segmentation"]
    if kind is None:
        return []
    if kind == "polygon":
        return seg
    if kind == "rle":
        return geometry.compress_rle(seg)
    return geometry.segmentation_rle(kind, seg, image.height, image.width, root)
