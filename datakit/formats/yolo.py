"""YOLO: one txt per image, ``class cx cy w h`` (normalized to the image size) or, for segmentation,
``class x1 y1 x2 y2 ...`` (a normalized polygon of at least 3 points).

Layouts read: Ultralytics ``data.yaml`` (``train``/``val``/``test`` as image folders or list
files, ``names`` as a list or an index -> name map; labels in the ``labels/`` folder parallel to
``images/``), darknet ``obj.data`` (``train = data/train.txt``, ``names = data/obj.names``,
labels next to the images), and the darknet folder convention without a config: ``obj.names``
(or another ``*.names``, one class per line) beside ``images/<split>/`` and ``labels/<split>/``
(or unsplit ``images/`` and ``labels/``). Class indices are category ids 0..K-1. A folder named
for several splits (``train: images`` and ``val: images``) holds unsplit images.

Layout written: ``data.yaml``, ``images/<split>/...`` and ``labels/<split>/...`` (``images/`` and
``labels/`` for unsplit images, then listed as both train and val). Coordinates are rounded to
``WriteOptions.decimals`` (6) places. Images whose names differ only in suffix (``a.jpg``,
``a.png``) would share one label file, so they keep the suffix in the stem (``a.jpg.jpg``; each
rename is reported). YOLO has no crowd flag and no image labels; crowd objects are left out and
reported.
"""

from __future__ import annotations

import glob
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from datakit import geometry
from datakit.errors import DatakitError
from datakit.formats.base import (
    read_text,
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
    inspect_images,
    output_path,
    place_image,
    relative_to_root,
    safe_relative,
    stem_names,
    target_category_ids,
    without_suffix,
)
from datakit.imageinfo import IMAGE_EXTENSIONS
from datakit.manifest import Manifest
from datakit.regular_files import special_kind_at

NAME = "yolo"
DESCRIPTION = "YOLO txt labels (detection boxes, segmentation polygons) with data.yaml or obj.data"
_SPLIT_KEYS = {"train": "train", "val": "val", "valid": "val", "test": "test"}
_FOLDER_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}
_UNSPLIT = ""


def _config_file(src: Path) -> Path | None:
    if src.is_file() and src.suffix.lower() in (".yaml", ".yml", ".data", ".names"):
        return src
    if not src.is_dir():
        return None
    for name in ("data.yaml", "data.yml", "dataset.yaml", "obj.data"):
        if (src / name).is_file():
            return src / name
    if (src / "images").is_dir() and (src / "labels").is_dir():  # darknet's folders, no config file
        names = [src / "obj.names"] if (src / "obj.names").is_file() else sorted(src.glob("*.names"))
        if names:
            return names[0]
    return None


def detect(src: Path) -> bool:
    return _config_file(src) is not None


# ---------------------------------------------------------------------------------------------
# reading


def load_yaml(path: Path, shown: str) -> Any:
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DatakitError(f"{shown}: {where}malformed YAML ({problem})") from None
    except UnicodeDecodeError:
        raise DatakitError(f"{shown}: not UTF-8 text") from None


def _darknet_config(path: Path) -> dict[str, str]:
    config: dict[str, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise DatakitError(f"{path.name}: line {number}: expected 'key = value', found {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        config[key] = value
    return config


def _in_root(root: Path, name: str, shown: str, report: Report) -> str | None:
    """A path from a config or list file, relative to the data set root; darknet's ``data/``
    prefix (the folder the data set sits in for darknet) is dropped when that is what exists."""
    path, problem = safe_relative(name)
    if problem:
        report.skip(shown, "", f"path {name!r} {problem}; refused, not read")
        return None
    if not (root / path).exists() and path.startswith("data/") and (root / path[5:]).exists():
        return path[5:]
    return path


def _names(raw: Any, shown: str) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict):
        try:
            indices = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise DatakitError(f"{shown}: 'names' keys must be class indices 0..K-1") from None
        if indices != list(range(len(indices))):
            raise DatakitError(f"{shown}: 'names' indices must be 0..{len(indices) - 1}, found {indices}")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in indices]
    raise DatakitError(f"{shown}: 'names' must be a list or an index -> name map")


def _split_sources(config_path: Path, root: Path, report: Report) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and, per split, the image folders or list files it names (relative to root)."""
    shown = config_path.name
    sources: dict[str, list[str]] = {}
    if config_path.suffix == ".names":
        names = [line.strip() for line in read_text(config_path).splitlines() if line.strip()]
        folders = sorted(p.name for p in (root / "images").iterdir() if p.is_dir())
        for folder in folders:
            if folder.lower() in _FOLDER_SPLITS:
                sources.setdefault(_FOLDER_SPLITS[folder.lower()], []).append(f"images/{folder}")
        if not sources:
            sources[_UNSPLIT] = ["images"]
    elif config_path.suffix == ".data":
        config = _darknet_config(config_path)
        names_file = _in_root(root, config.get("names", "obj.names"), shown, report)
        if names_file is None or not (root / names_file).is_file():
            raise DatakitError(f"{shown}: names file {config.get('names', 'obj.names')!r} not found")
        names = [line.strip() for line in read_text(root / names_file).splitlines() if line.strip()]
        for key, split in _SPLIT_KEYS.items():
            if key in config:
                sources.setdefault(split, []).append(config[key])
    else:
        data = load_yaml(config_path, shown)
        if not isinstance(data, dict):
            raise DatakitError(f"{shown}: expected a mapping with 'names' and 'train'/'val'/'test'")
        if "names" not in data:
            raise DatakitError(f"{shown}: 'names' is missing")
        names = _names(data["names"], shown)
        base = data.get("path")
        if isinstance(base, str) and base not in ("", "."):
            if Path(base).is_absolute():
                report.change(shown, "path", f"absolute path {base!r} ignored; paths are read from the folder of {shown}")
                base = ""
        else:
            base = ""
        for key, split in _SPLIT_KEYS.items():
            value = data.get(key)
            for item in (value if isinstance(value, list) else [value] if value else []):
                sources.setdefault(split, []).append(posixpath.join(base, str(item)) if base else str(item))
    named: dict[str, list[str]] = {}  # path -> the splits that name it, in order
    for split, items in sources.items():
        for item in items:
            path = _in_root(root, item, shown, report)
            if path is not None:
                named.setdefault(path, []).append(split)
    resolved: dict[str, list[str]] = {}
    for path, splits in named.items():
        # one folder as train and val (as datakit writes an unsplit set, and quick configs do):
        # its images belong to no split, rather than all to the first one named
        split = splits[0] if len(set(splits)) == 1 else _UNSPLIT
        resolved.setdefault(split, []).append(path)
    return names, resolved


def _images_of(root: Path, source: str, report: Report) -> list[str]:
    target = root / source
    if target.is_dir():
        return sorted(relative_to_root(p, root) for p in target.rglob("*")
                      if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith("."))
    if target.is_file():
        out = []
        for number, line in enumerate(read_text(target).splitlines(), start=1):
            line = line.strip()
            if line:
                path = _in_root(root, line, f"{source}: line {number}", report)
                if path is not None:
                    out.append(path)
        return out
    report.skip(source, "", "listed in the data set config but does not exist")
    return []


def label_path(image: str) -> str:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``, the suffix ``.txt``."""
    parts = image.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return posixpath.splitext("/".join(parts))[0] + ".txt"


def read(src: Path, options: ReadOptions) -> ReadResult:
    src = Path(src)
    config_path = _config_file(src)
    if config_path is None:
        raise DatakitError(f"{src}: no data.yaml, obj.data, or obj.names beside images/ and labels/ found")
    root = config_path.parent
    report = Report(options.on_invalid)
    names, sources = _split_sources(config_path, root, report)
    categories = CategoryTable(report)
    for index, name in enumerate(names):
        if name in categories:
            raise DatakitError(f"{config_path.name}: class name {name!r} is used twice; categories are matched by name")
        categories.add(name, index)
    images = ImageTable()
    for split, items in sources.items():
        for item in items:
            for path in _images_of(root, item, report):
                images.add(path, split=split or None, where=f"{config_path.name}: {split or 'unsplit'}")
    frame = inspect_images(root, images, report, options)
    sizes = {p: (None if pd.isna(w) or pd.isna(h) else (int(w), int(h)))
             for p, w, h in zip(frame["path"].tolist(), frame["width"].tolist(), frame["height"].tolist())}
    annotations = AnnotationTable()
    label_files = []
    for path in frame["path"].tolist():
        labels = label_path(path)
        if not (root / labels).exists():
            beside = posixpath.splitext(path)[0] + ".txt"
            labels = beside if (root / beside).exists() else labels
        if not (root / labels).exists():
            continue  # an image without a label file has no objects (YOLO's negatives)
        kind = special_kind_at(root / labels)
        if kind:
            report.skip(labels, "", f"not a regular file ({kind}): never opened; {path} is read without its objects")
            continue
        label_files.append(labels)
        _read_labels(root / labels, labels, path, sizes[path], names, annotations, report)
    folders = [item for items in sources.values() for item in items if (root / item).is_dir()]
    _report_labels_without_images(root, folders, set(label_files), report)
    _report_unlisted_image_folders(root, folders, set(images.path), config_path.name, report)
    manifest = build_manifest(root, images, annotations, categories.finish(), report, options, frame=frame,
                              source={"format": NAME, "config": config_path.name})
    return ReadResult(manifest, report, NAME, label_files)


def _report_labels_without_images(root: Path, image_folders: list[str], read: set[str], report: Report) -> None:
    """Label files in an image folder's labels/ twin whose image is not there (labels/train/b.txt
    without images/train/b.*): labels are found from images, so these would vanish unreported."""
    for folder in dict.fromkeys(image_folders):
        labels = posixpath.dirname(label_path(f"{folder}/x"))
        if labels == folder or not (root / labels).is_dir():
            continue  # darknet keeps labels beside the images: a txt there may be anything
        for file in sorted((root / labels).rglob("*.txt")):
            shown = relative_to_root(file, root)
            image = folder + without_suffix(shown)[len(labels):]
            if shown in read or _has_image(root / image):
                continue
            kind = special_kind_at(file)
            if kind:
                report.invalid(shown, "", f"not a regular file ({kind}), and no image {image}.* for it; never opened")
                continue
            lines = sum(1 for line in read_text(file).splitlines() if line.strip())
            report.invalid(shown, "", f"no image {image}.* for this label file; its {lines} object(s) not read")


def _report_unlisted_image_folders(root: Path, image_folders: list[str], read: set[str], config: str,
                                   report: Report) -> None:
    """Folders beside a listed image folder that the config does not list (images/test when data.yaml
    names only train and val): their images are not read, and would be absent without a word."""
    listed = set(image_folders)
    for parent in sorted({posixpath.dirname(folder) for folder in listed}):
        for sibling in sorted(p for p in (root / parent).iterdir() if p.is_dir() and not p.name.startswith(".")):
            folder = relative_to_root(sibling, root)
            if folder in listed or any(other.startswith(folder + "/") for other in listed):
                continue
            unread = [path for path in _images_of(root, folder, report) if path not in read]
            if unread:
                report.skip(folder, "", f"{len(unread)} image(s) in a folder {config} does not list: not read "
                                        "(list it under train, val or test to read them)")


def _has_image(stem_path: Path) -> bool:
    """Whether an image file with this path and any image suffix exists."""
    return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
               for p in stem_path.parent.glob(glob.escape(stem_path.name) + ".*"))


def _read_labels(path: Path, shown: str, image: str, size: tuple[int, int] | None, names: list[str],
                 annotations: AnnotationTable, report: Report) -> None:
    lines = read_text(path).splitlines()
    if size is None:
        if any(line.strip() for line in lines):
            report.skip(shown, "", "image size unknown (file missing or unreadable); its normalized objects cannot be placed")
        return
    width, height = size
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {number}"
        try:
            values = [float(v) for v in tokens[1:]]
            class_value = float(tokens[0])  # some converters write "1.0"; Ultralytics reads it as class 1
        except ValueError:
            report.invalid(shown, where, f"expected numbers, found {line.strip()!r}")
            continue
        if not class_value.is_integer():
            report.invalid(shown, where, f"the class id must be a whole number, found {tokens[0]!r}")
            continue
        cls = int(class_value)
        if not 0 <= cls < len(names):
            report.invalid(shown, where, f"unknown category id {cls} (names has {len(names)} classes)")
            continue
        if len(values) == 4:
            cx, cy, w, h = values
            box = ((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
            annotations.add(image, names[cls], box, file=shown, where=where)
            continue
        if len(values) % 2 or len(values) < 4:
            report.invalid(shown, where, f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', found "
                                         f"{len(tokens)} values")
            continue
        points = np.array(values).reshape(-1, 2) * [float(width), float(height)]
        polygon = [float(v) for v in points.reshape(-1)]
        problem = geometry.polygon_problem(polygon)
        if problem:
            report.invalid(shown, where, f"polygon {problem}")
            continue
        annotations.add(image, names[cls], geometry.polygons_box([polygon]),
                        area=geometry.polygons_area([polygon], int(height), int(width)),
                        kind="polygon", segmentation=[polygon], file=shown, where=where)


# ---------------------------------------------------------------------------------------------
# writing


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    categories = object_categories(manifest.categories, images, report, "yolo")
    ids = target_category_ids(categories, "contiguous0", report, "YOLO class indices")
    root = manifest.root()
    d = options.decimals
    lose_image_fields(images, report, "YOLO", labels=True)
    folders: dict[str, str] = {}
    files = n_annotations = 0
    for split, group in by_split(images):
        plain = export_names([im.path for im in group])
        names = unique_stem_names(plain)
        folder = f"images/{split}" if split else "images"
        folders[split or ""] = folder
        for im in group:
            name = names[im.path]
            if name != plain[im.path]:
                report.change(im.path, "", f"written as {folder}/{name}: another image shares its stem, and YOLO "
                                           "finds a label file by the image's stem")
            if not place_image(manifest.image_path(im.path), output_path(out, f"{folder}/{name}"), options.images):
                report.skip(im.path, "", "image file not found; labels written, image not copied")
            files += options.images != "none"
            lines = []
            for k, ann in enumerate(im.annotations, start=1):
                line = _label_line(ann, im, ids[ann["category"]], d, options.yolo_task, root, report, k)
                if line is not None:
                    lines.append(line)
            target = output_path(out, label_path(f"{folder}/{name}"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            files += 1
            n_annotations += len(lines)
    config: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        if split in folders:
            config[split] = folders[split]
    if "" in folders:
        config.setdefault("train", folders[""])
        config.setdefault("val", folders[""])
    ordered = sorted(ids.items(), key=lambda kv: kv[1])
    config["nc"] = len(ordered)
    config["names"] = {index: name for name, index in ordered}
    (out / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return WriteResult(out, NAME, len(images), n_annotations, files + 1, report)


def unique_stem_names(names: dict[str, str]) -> dict[str, str]:
    """Image names whose stems differ: labels are found by the image's stem, so a.jpg and a.png
    in one folder would share a.txt; those are written as a.jpg.jpg and a.png.png instead."""
    stems = stem_names(list(names.values()))
    return {path: stems[name] + posixpath.splitext(name)[1] for path, name in names.items()}


def _fmt(values: list[float], decimals: int) -> str:
    # clamp float noise to the image; boxes were clipped to it at ingest
    return " ".join(f"{min(max(v, 0.0), 1.0):.{decimals}f}" for v in values)


def _label_line(ann: dict[str, Any], im: Any, cls: int, decimals: int, task: str, root: Path,
                report: Report, k: int) -> str | None:
    where = f"object {k} ({ann['category']})"
    if ann["iscrowd"]:
        report.lose(im.path, where, "iscrowd=1 has no YOLO equivalent; left out")
        return None
    if not im.width or not im.height:
        report.skip(im.path, where, "image size unknown; cannot normalize")
        return None
    W, H = float(im.width), float(im.height)
    if task == "detect":
        x, y, w, h = ann["bbox"]
        return f"{cls} {_fmt([(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], decimals)}"
    polygon = _one_polygon(ann, im, root, report, where)
    values = [v / (W if i % 2 == 0 else H) for i, v in enumerate(polygon)]
    return f"{cls} {_fmt(values, decimals)}"


def _one_polygon(ann: dict[str, Any], im: Any, root: Path, report: Report, where: str) -> list[float]:
    """The object's polygon for a segment label (one polygon per line), saying what is lost."""
    kind = ann["kind"]
    if kind is None:
        report.lose(im.path, where, "box only; written as its rectangle polygon")
        return geometry.box_to_polygon(ann["bbox"])
    if kind == "polygon":
        parts = ann["segmentation"]
    else:
        mask = geometry.segmentation_mask(kind, ann["segmentation"], im.height, im.width, root)
        parts, lost = geometry.mask_to_polygons(mask)
        if lost:
            report.lose(im.path, where, f"mask to polygon: {lost}")
        if not parts:
            report.lose(im.path, where, "mask too small for a polygon; written as its box")
            return geometry.box_to_polygon(ann["bbox"])
    if len(parts) > 1:
        report.lose(im.path, where, f"{len(parts)} polygon parts; YOLO takes one per object, the largest is written")
    return max(parts, key=lambda p: abs(_shoelace(p)))


def _shoelace(part: list[float]) -> float:
    xs, ys = np.array(part[0::2]), np.array(part[1::2])
    return 0.5 * float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
