"""Pascal VOC: Annotations XML, ImageSets split lists, SegmentationClass/SegmentationObject PNGs.

Coordinates: VOC corners are 1-based pixel indices, inclusive at both ends, so a box from
``xmin = 1`` to ``xmax = 10`` covers pixel columns 0..9 and becomes ``x = 0, w = 10``
(``x = xmin - 1``, ``w = xmax - xmin + 1``). Some tools (labelme's converter, Datumaro) write
0-based corners instead; ``ReadOptions.voc_one_based = False`` reads those (``x = xmin``).

Categories: ``labelmap.txt`` (Datumaro style ``name:r,g,b:parts:actions``) or ``class_names.txt``
(one name per line) give the class index of each name; without them the 21 standard VOC classes
are used (index 0 is background). Class and object maps are palette PNGs (RGB ones are decoded
through the palette); 255 marks the "void" border and is kept as it is. Object ``k`` of an XML
file (1-based, in file order) is instance value ``k`` of its SegmentationObject map.
``difficult``, ``truncated``, ``occluded``, ``pose``, parts and actions are kept in attributes.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from datakit import geometry
from datakit.errors import DatakitError
from datakit.regular_files import read_regular_file
from datakit.formats import label_maps
from datakit.formats.base import (
    read_text,
    AnnotationTable,
    CategoryTable,
    ExportImage,
    ImageTable,
    ReadOptions,
    ReadResult,
    Report,
    WriteOptions,
    WriteResult,
    build_manifest,
    export_images,
    lose_image_fields,
    flat_names,
    names_for_list,
    inspect_images,
    mask_fits,
    output_path,
    place_image,
    safe_relative,
    target_category_ids,
)
from datakit.imageinfo import IMAGE_EXTENSIONS
from datakit.manifest import Manifest

NAME = "voc"
DESCRIPTION = "Pascal VOC (Annotations XML, ImageSets, SegmentationClass/Object PNGs)"
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
VOID = 255
SPLIT_FILES = ("train", "val", "test")
FLAGS = ("truncated", "difficult", "occluded")


def detect(src: Path) -> bool:
    return src.is_dir() and (src / "JPEGImages").is_dir() and (
        (src / "Annotations").is_dir() or any((src / f"Segmentation{kind}{suffix}").is_dir()
                                               for kind in ("Class", "Object") for suffix in ("", "PNG")))


def _mask_folder(src: Path, kind: str) -> Path:
    """SegmentationClass/ or SegmentationObject/; LabelMe's VOC export keeps .npy arrays there and
    the PNG maps in SegmentationClassPNG/ and SegmentationObjectPNG/, which are read instead."""
    folder, png = src / f"Segmentation{kind}", src / f"Segmentation{kind}PNG"
    if png.is_dir() and not (folder.is_dir() and any(folder.glob("*.png"))):
        return png
    return folder


# ---------------------------------------------------------------------------------------------
# reading


def _class_list(src: Path) -> tuple[list[str] | None, np.ndarray | None, str | None]:
    """Class names by index, their colours when the list gives them, and the file they came from."""
    labelmap = src / "labelmap.txt"
    if labelmap.is_file():
        names: list[str] = []
        colours: list[list[int]] = []
        for number, line in enumerate(read_text(labelmap).splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            names.append(fields[0])
            if len(fields) > 1 and fields[1].strip():
                try:
                    colour = [int(v) for v in fields[1].split(",")]
                except ValueError:
                    raise DatakitError(f"labelmap.txt: line {number}: colour {fields[1]!r} is not r,g,b") from None
                if len(colour) != 3:
                    raise DatakitError(f"labelmap.txt: line {number}: colour {fields[1]!r} is not r,g,b")
                colours.append(colour)
        palette = None
        if colours and len(colours) == len(names):
            palette = geometry.voc_colormap().copy()
            palette[: len(colours)] = np.array(colours, dtype=np.uint8)
        return names, palette, "labelmap.txt"
    class_names = src / "class_names.txt"
    if class_names.is_file():
        names = [line.strip() for line in read_text(class_names).splitlines() if line.strip()]
        return names, None, "class_names.txt"
    return None, None, None


def _split_lists(src: Path, report: Report) -> dict[str, str]:
    """Image stem -> split, from ImageSets/<task>/{train,val,test}.txt (Main first)."""
    splits: dict[str, str] = {}
    folders = sorted((src / "ImageSets").glob("*")) if (src / "ImageSets").is_dir() else []
    folders.sort(key=lambda p: p.name != "Main")
    for folder in folders:
        for split in SPLIT_FILES:
            path = folder / f"{split}.txt"
            if not path.is_file():
                continue
            shown = f"ImageSets/{folder.name}/{split}.txt"
            for number, line in enumerate(read_text(path).splitlines(), start=1):
                stem = _list_id(line)
                if not stem:
                    continue
                previous = splits.get(stem)
                if previous is None:
                    splits[stem] = split
                elif previous != split:
                    report.change(shown, f"line {number}", f"{stem!r} is also in the {previous} list; it stays in {previous}")
    return splits


def _list_id(line: str) -> str:
    """The image id of a split list line: ``id`` or ``id flag`` (flag -1, 0 or 1, as the class lists
    write it); any other line is one id, spaces included (``my photo``)."""
    fields = line.strip().rsplit(None, 1)
    if len(fields) == 2 and fields[1] in ("-1", "0", "1"):
        return fields[0].strip()
    return line.strip()


def _number(element: ET.Element | None, tag: str) -> float | None:
    child = element.find(tag) if element is not None else None
    if child is None or child.text is None or not child.text.strip():
        return None
    try:
        return float(child.text)
    except ValueError:
        return None


def _flag(element: ET.Element, tag: str) -> bool | None:
    value = _number(element, tag)
    return None if value is None else bool(value)


def _box(bndbox: ET.Element | None, one_based: bool) -> tuple[float, float, float, float] | str:
    values = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        value = _number(bndbox, tag)
        if value is None:
            return f"bndbox/{tag} is missing or not a number"
        values.append(value)
    xmin, ymin, xmax, ymax = values
    if one_based:
        return (xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1)
    return (xmin, ymin, xmax - xmin, ymax - ymin)


def parse_xml(path: Path, shown: str) -> ET.Element:
    try:
        root = ET.parse(io.BytesIO(read_regular_file(path))).getroot()
    except OSError as exc:
        raise DatakitError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    except ET.ParseError as exc:
        line, column = exc.position
        message = str(exc).split(":")[0]
        raise DatakitError(f"{shown}: line {line}, column {column + 1}: malformed XML ({message})") from None
    if root.tag != "annotation":
        raise DatakitError(f"{shown}: root element is <{root.tag}>, expected <annotation>")
    return root


def read(src: Path, options: ReadOptions) -> ReadResult:
    src = Path(src)
    if not detect(src):
        raise DatakitError(f"{src}: not a VOC folder (needs JPEGImages/ and Annotations/ or SegmentationClass/)")
    report = Report(options.on_invalid)
    listed, palette, list_file = _class_list(src)
    class_dir, object_dir = _mask_folder(src, "Class"), _mask_folder(src, "Object")
    has_masks = class_dir.is_dir() or object_dir.is_dir()
    index_of = {name: i for i, name in enumerate(listed or VOC_CLASSES)}
    categories = CategoryTable(report)
    if listed is not None or has_masks:
        # masks store class indices, so every listed class keeps its index as its id
        for name, i in index_of.items():
            categories.add(name, i)
    splits = _split_lists(src, report)
    image_files = {p.stem: p.name for p in sorted((src / "JPEGImages").iterdir())
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")}
    images = ImageTable()
    annotations = AnnotationTable()
    seen: set[str] = set()
    xml_files = sorted((src / "Annotations").glob("*.xml")) if (src / "Annotations").is_dir() else []
    for xml_path in xml_files:
        shown = f"Annotations/{xml_path.name}"
        root = parse_xml(xml_path, shown)
        stem = xml_path.stem
        filename = (root.findtext("filename") or "").strip() or image_files.get(stem, f"{stem}.jpg")
        path, problem = safe_relative(filename, "JPEGImages")
        if problem:
            report.skip(shown, "<filename>", f"{filename!r} {problem}; refused, not read")
            continue
        if not (src / path).is_file() and stem in image_files:
            # <filename> names another suffix or an old name; the image with the XML's stem is the one
            report.change(shown, "<filename>", f"{filename!r} not found; using JPEGImages/{image_files[stem]}")
            path = f"JPEGImages/{image_files[stem]}"
        size = root.find("size")
        width, height = _number(size, "width"), _number(size, "height")
        w_int, h_int = (int(width) if width else None), (int(height) if height else None)
        semantic = _mask_path(class_dir, stem)
        images.add(path, w_int, h_int, split=splits.get(stem), semantic_mask=semantic, where=shown)
        seen.add(stem)
        object_values = _object_values(object_dir, stem, palette, report, shown)
        used_values: set[int] = set()
        for k, obj in enumerate(root.findall("object"), start=1):
            name = (obj.findtext("name") or "").strip()
            where = f"object {k}" + (f" ({name})" if name else "")
            if not name:
                report.invalid(shown, where, "has no <name>")
                continue
            box = _box(obj.find("bndbox"), options.voc_one_based)
            if isinstance(box, str):
                report.invalid(shown, where, box)
                continue
            if name not in categories:
                categories.add(name, index_of.get(name))
            kind = segmentation = area = None
            if object_values is not None and k in object_values[1]:
                kind, segmentation = "mask_file", {"path": f"{object_dir.name}/{stem}.png", "value": k}
                area = float((object_values[0] == k).sum())
                used_values.add(k)
            annotations.add(path, name, box, id=f"{stem}:{k}", area=area, kind=kind, segmentation=segmentation,
                            attributes=_attributes(obj, options.voc_one_based), file=shown, where=where)
        if object_values is not None:
            _objects_without_xml(object_values, used_values, stem, path, class_dir, palette, index_of,
                                 annotations, report, object_dir.name)
    # images named only by split lists, class maps or the image folder: kept, with no objects
    class_map_stems = {p.stem for p in class_dir.glob("*.png")} if class_dir.is_dir() else set()
    class_map_stems |= {p.stem for p in object_dir.glob("*.png")} if object_dir.is_dir() else set()
    for stem in sorted(set(splits) | set(image_files) | class_map_stems):
        if stem in seen:
            continue
        path, problem = safe_relative(image_files.get(stem, f"{stem}.jpg"), "JPEGImages")
        if problem:
            report.skip("ImageSets", "", f"{stem!r} {problem}; refused, not read")
            continue
        images.add(path, split=splits.get(stem), semantic_mask=_mask_path(class_dir, stem), where=f"JPEGImages/{stem}")
        # a segmentation-only export (no Annotations/): the object map's instances are the objects
        object_values = _object_values(object_dir, stem, palette, report, f"{object_dir.name}/{stem}.png")
        if object_values is not None:
            _objects_without_xml(object_values, set(), stem, path, class_dir, palette, index_of, annotations, report,
                                 object_dir.name)
    # image sizes first: every class and object map must have its image's size
    frame = inspect_images(src, images, report, options)
    _check_class_maps(src, frame, set(index_of.values()), palette, report)
    _refuse_misfit_object_maps(src, frame, annotations, report)
    extra = {"mask_palette": palette.tolist()} if palette is not None else None
    manifest = build_manifest(src, images, annotations, categories.finish(), report, options,
                              source={"format": NAME, "class_list": list_file,
                                      "one_based": options.voc_one_based},
                              extra=extra, frame=frame)
    return ReadResult(manifest, report, NAME, [str(p) for p in xml_files])


def _mask_path(folder: Path, stem: str) -> str | None:
    return f"{folder.name}/{stem}.png" if (folder / f"{stem}.png").is_file() else None


def _object_values(object_dir: Path, stem: str, palette: np.ndarray | None, report: Report,
                   shown: str) -> tuple[np.ndarray, set[int]] | None:
    path = object_dir / f"{stem}.png"
    if not path.is_file():
        return None
    values = geometry.read_label_png(path, palette)
    return values, {int(v) for v in np.unique(values)} - {0, VOID}


def _objects_without_xml(object_values: tuple[np.ndarray, set[int]], used: set[int], stem: str, path: str,
                         class_dir: Path, palette: np.ndarray | None, index_of: dict[str, int],
                         annotations: AnnotationTable, report: Report, object_folder: str = "SegmentationObject") -> None:
    """Instances in an object map that no XML object claims: their class comes from the class map."""
    values, present = object_values
    extra = sorted(present - used)
    if not extra:
        return
    class_path = class_dir / f"{stem}.png"
    shown = f"{object_folder}/{stem}.png"
    if not class_path.is_file():
        for value in extra:
            report.skip(shown, f"instance {value}", "no XML object and no class map to name its class")
        return
    classes = geometry.read_label_png(class_path, palette)
    names = {i: n for n, i in index_of.items()}
    for value in extra:
        inside = classes[values == value]
        inside = inside[(inside != 0) & (inside != VOID)]
        if inside.size == 0 or int(np.bincount(inside).argmax()) not in names:
            report.skip(shown, f"instance {value}", "its pixels have no known class in the class map")
            continue
        mask = (values == value).astype(np.uint8)
        annotations.add(path, names[int(np.bincount(inside).argmax())], geometry.mask_box(mask), id=f"{stem}:{value}",
                        area=float(mask.sum()), kind="mask_file", segmentation={"path": shown, "value": value},
                        file=shown, where=f"instance {value}")


def _check_class_maps(src: Path, frame: pd.DataFrame, indices: set[int], palette: np.ndarray | None,
                      report: Report) -> None:
    """A class map must have its image's size and hold only class indices, background 0 or void 255;
    one that does not is not used."""
    known = {0, VOID} | indices
    for row, path, mask, width, height in zip(frame.index, frame["path"].tolist(), frame["semantic_mask"].tolist(),
                                              frame["width"].tolist(), frame["height"].tolist()):
        if mask is None or mask is pd.NA:
            continue
        values = geometry.read_label_png(src / mask, palette)
        unknown = sorted({int(v) for v in np.unique(values)} - known)
        if not mask_fits(values.shape, mask, path, (width, height), report):
            frame.loc[row, "semantic_mask"] = pd.NA
        elif unknown:
            report.invalid(mask, "", f"class value(s) {unknown} are not in the class list; class map not used")
            frame.loc[row, "semantic_mask"] = pd.NA


def _refuse_misfit_object_maps(src: Path, frame: pd.DataFrame, annotations: AnnotationTable, report: Report) -> None:
    """Objects whose object map is not its image's size lose that mask: an XML object keeps its box,
    an object known only from the map is dropped."""
    sizes = dict(zip(frame["path"].tolist(), zip(frame["width"].tolist(), frame["height"].tolist())))
    maps = {(json.loads(seg)["path"], image) for kind, seg, image
            in zip(annotations.kind, annotations.segmentation, annotations.image) if kind == "mask_file"}
    refused = set()
    for map_path, image in sorted(maps):
        with Image.open(io.BytesIO(read_regular_file(src / map_path))) as opened:
            shape = (opened.height, opened.width)
        if not mask_fits(shape, map_path, image, sizes.get(image), report):
            refused.add(map_path)
    drop = set()
    for i, (kind, seg) in enumerate(zip(annotations.kind, annotations.segmentation)):
        if kind != "mask_file" or json.loads(seg)["path"] not in refused:
            continue
        if annotations.file[i] == json.loads(seg)["path"]:
            drop.add(i)
        else:
            annotations.kind[i] = annotations.segmentation[i] = annotations.area[i] = None
    annotations.remove(drop)


def _attributes(obj: ET.Element, one_based: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for flag in FLAGS:
        value = _flag(obj, flag)
        if value is not None:
            attributes[flag] = value
    pose = (obj.findtext("pose") or "").strip()
    if pose:
        attributes["pose"] = pose
    parts = []
    for part in obj.findall("part"):
        box = _box(part.find("bndbox"), one_based)
        if not isinstance(box, str):
            parts.append({"name": (part.findtext("name") or "").strip(), "bbox": list(box)})
    if parts:
        attributes["parts"] = parts
    actions = obj.find("actions")
    if actions is not None:
        attributes["actions"] = {child.tag: bool(float(child.text or 0)) for child in actions}
    return attributes


# ---------------------------------------------------------------------------------------------
# writing


def _num(value: float) -> str:
    rounded = round(float(value), 9)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def _corners(box: Any) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (x + 1, y + 1, x + w, y + h)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    ids = target_category_ids(manifest.categories, "voc", report, "VOC class indices")
    if ids and max(ids.values()) >= VOID:
        raise DatakitError(f"VOC class maps hold at most {VOID - 1} classes; this manifest has {len(ids)}")
    source_palette = np.array(manifest.extra["mask_palette"], dtype=np.uint8) if manifest.extra.get("mask_palette") else None
    # manifest category id -> VOC index, for re-coding class maps; anything else keeps its value
    recode = {int(c["id"]): ids[c["name"]] for c in manifest.categories}
    # labelmap.txt lines are 'name:colour:parts:actions' and '#' starts a comment there: the name of
    # each class, in the XML files too, is one that reads back on its own line
    written = names_for_list(list(ids), "labelmap.txt", report, separators=":", hash_comments=True)
    # split lists are whitespace separated: a stem with a space would be read as two fields
    stems = flat_names([im.path for im in images], no_whitespace=True)
    root = manifest.root()
    lists: dict[str, list[str]] = {}
    segmentation_lists: dict[str, list[str]] = {}
    files = n_annotations = 0
    lose_image_fields(images, report, "VOC", labels=True)
    for im in images:
        stem = stems[im.path]
        image_name = stem + Path(im.path).suffix
        if not place_image(manifest.image_path(im.path), output_path(out, f"JPEGImages/{image_name}"), options.images):
            report.skip(im.path, "", "image file not found; annotation written, image not copied")
        files += options.images != "none"
        segmented = _write_masks(im, stem, out, root, ids, recode, source_palette, report)
        xml = _annotation_xml(im, image_name, written, segmented, report)
        target = output_path(out, f"Annotations/{stem}.xml")
        target.parent.mkdir(parents=True, exist_ok=True)
        ET.indent(xml)
        ET.ElementTree(xml).write(target, encoding="unicode", xml_declaration=False)
        files += 1 + 2 * segmented
        n_annotations += len(im.annotations)
        lists.setdefault(im.split or "default", []).append(stem)
        if segmented:
            segmentation_lists.setdefault(im.split or "default", []).append(stem)
    for task, per_split in (("Main", lists), ("Segmentation", segmentation_lists)):
        if "train" in per_split or "val" in per_split:
            per_split = {**per_split, "trainval": per_split.get("train", []) + per_split.get("val", [])}
        for split, stems_in in per_split.items():
            target = output_path(out, f"ImageSets/{task}/{split}.txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(f"{s}\n" for s in stems_in), encoding="utf-8")
            files += 1
    colours = geometry.voc_colormap()
    names_by_index = sorted(ids.items(), key=lambda kv: kv[1])
    if not any(i == 0 for _, i in names_by_index):
        names_by_index.insert(0, ("background", 0))
    lines = ["# label:color_rgb:parts:actions"] + [
        f"{written.get(name, name)}:{','.join(str(int(v)) for v in colours[i])}::" for name, i in names_by_index]
    (out / "labelmap.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return WriteResult(out, NAME, len(images), n_annotations, files + 1, report)


def _annotation_xml(im: ExportImage, image_name: str, written: dict[str, str], segmented: bool,
                    report: Report) -> ET.Element:
    """One Annotations/*.xml; ``written``: category name -> the name labelmap.txt lists it by."""
    root = ET.Element("annotation")
    _sub(root, "folder", "JPEGImages")
    _sub(root, "filename", image_name)
    size = _sub(root, "size")
    _sub(size, "width", im.width if im.width is not None else "")
    _sub(size, "height", im.height if im.height is not None else "")
    _sub(size, "depth", im.channels or 3)
    _sub(root, "segmented", int(segmented))
    for k, ann in enumerate(im.annotations, start=1):
        attrs = ann["attributes"]
        obj = _sub(root, "object")
        _sub(obj, "name", written.get(ann["category"], ann["category"]))
        _sub(obj, "pose", attrs.get("pose", "Unspecified"))
        _sub(obj, "truncated", int(bool(attrs.get("truncated", False))))
        difficult = bool(attrs.get("difficult", False))
        if ann["iscrowd"]:
            # VOC has no crowd regions; evaluators ignore difficult objects, as COCO ignores crowds
            report.lose(im.path, f"object {k}", "iscrowd=1 has no VOC equivalent; written as difficult")
            difficult = True
        _sub(obj, "difficult", int(difficult))
        if "occluded" in attrs:
            _sub(obj, "occluded", int(bool(attrs["occluded"])))
        bndbox = _sub(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), _corners(ann["bbox"])):
            _sub(bndbox, tag, _num(value))
        for part in attrs.get("parts", []):
            part_element = _sub(obj, "part")
            _sub(part_element, "name", part.get("name", ""))
            part_box = _sub(part_element, "bndbox")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), _corners(part["bbox"])):
                _sub(part_box, tag, _num(value))
        if attrs.get("actions"):
            actions = _sub(obj, "actions")
            for action, on in attrs["actions"].items():
                _sub(actions, action, int(bool(on)))
    return root


def _write_masks(im: ExportImage, stem: str, out: Path, root: Path, ids: dict[str, int], recode: dict[int, int],
                 source_palette: np.ndarray | None, report: Report) -> bool:
    """SegmentationClass and SegmentationObject maps for one image; False when it has no masks."""
    objects = label_maps.segmented_objects(im)
    if im.semantic_mask is None and not objects:
        return False
    if im.width is None or im.height is None:
        report.skip(im.path, "", "image size unknown; masks not written")
        return False
    shape = (im.height, im.width)
    classes = label_maps.class_map(im, shape, ids, recode, source_palette, root)
    instances = label_maps.instance_map(shape, objects, root) if objects else np.zeros(shape, dtype=np.int64)
    palette = geometry.voc_colormap()
    geometry.write_label_png(output_path(out, f"SegmentationClass/{stem}.png"), classes, palette)
    geometry.write_label_png(output_path(out, f"SegmentationObject/{stem}.png"), instances, palette)
    return True
