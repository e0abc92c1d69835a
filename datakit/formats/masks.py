"""Mask PNG folders: a class map and/or an instance map per image.

Layout (read and written; ``datakit sample shapes`` writes it too)::

    images/...                      the images, in any sub-folders
    masks/semantic/<name>.png       class value per pixel (8-bit; 0 = background, 255 = ignore)
    masks/instance/<name>.png       object id per pixel (16-bit when written; 0 = no object)
    classes.txt                     optional: "<value> <name>" per line (or one name per line,
                                    the line number being the value)

``<name>`` is the image's path under ``images/`` without its suffix (or with it, where two images
differ only in suffix), or just the file stem (the shapes sample stores masks flat). The writer
names masks flat by stem where no other image has that stem and mirrors the image's sub-folders
where stems collide, so a written folder reads back whole. Each object id becomes one object whose
category is the class most of its pixels have in the class map (``object`` when there is no class
map); its box and area come from its mask. Without ``classes.txt`` a class value ``v`` is named
``class_<v>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from datakit import geometry
from datakit.errors import DatakitError
from datakit.formats import label_maps
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
    export_images,
    lose_image_fields,
    export_names,
    file_stem,
    inspect_images,
    mask_fits,
    names_for_list,
    output_path,
    place_image,
    relative_to_root,
    target_category_ids,
    unique_names,
    without_suffix,
)
from datakit.manifest import Manifest

NAME = "masks"
DESCRIPTION = "mask PNG folders (semantic class maps, instance id maps)"
IGNORE = geometry.IGNORE
SEMANTIC, INSTANCE = "masks/semantic", "masks/instance"


def detect(src: Path) -> bool:
    return src.is_dir() and (src / "images").is_dir() and ((src / SEMANTIC).is_dir() or (src / INSTANCE).is_dir())


# ---------------------------------------------------------------------------------------------
# reading


def _classes(src: Path) -> dict[int, str] | None:
    path = src / "classes.txt"
    if not path.is_file():
        return None
    lines = [line.strip() for line in read_text(path).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    numbered = [re.match(r"^(\d+)\s+(.+)$", line) for line in lines]
    if lines and all(numbered):
        return {int(m.group(1)): m.group(2).strip() for m in numbered if m}
    return {i: name for i, name in enumerate(lines)}


def _mask_files(folder: Path) -> dict[str, str]:
    """Key (path without suffix under the folder, and unique stems) -> mask path from the data set root."""
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))
    out: dict[str, str] = {}
    stems: dict[str, list[Path]] = {}
    for p in files:
        out[p.relative_to(folder).with_suffix("").as_posix()] = p
        stems.setdefault(p.stem, []).append(p)
    for stem, paths in stems.items():
        if len(paths) == 1:
            out.setdefault(stem, paths[0])
    root = folder.parent.parent
    return {k: relative_to_root(v, root) for k, v in out.items()}


def _mask_of(image_name: str, mask_files: dict[str, str]) -> str | None:
    """The mask of an image (its name under images/): named by the image's path with its suffix
    (the writer's name for a.jpg beside a.png), without it, or by the image's stem alone."""
    for key in (image_name, without_suffix(image_name), file_stem(image_name)):
        if key in mask_files:
            return mask_files[key]
    return None


def _match_masks(image_names: list[str], mask_files: dict[str, str], report: Report) -> dict[str, str]:
    """Image name under images/ -> its mask. A mask that two images find (a.png for images/a.jpg
    by path and images/sub/a.jpg by stem) could belong to either: it is reported, naming them,
    and used for neither. A mask no image finds is reported too."""
    claims: dict[str, list[str]] = {}
    for name in image_names:
        mask = _mask_of(name, mask_files)
        if mask is not None:
            claims.setdefault(mask, []).append(name)
    for mask, names in claims.items():
        if len(names) > 1:
            candidates = ", ".join(f"images/{n}" for n in names)
            report.skip(mask, "", f"its name fits {len(names)} images ({candidates}); ambiguous, mask not used")
    for mask in sorted(set(mask_files.values()) - set(claims)):
        report.skip(mask, "", "no image with this name under images/; mask not used")
    return {names[0]: mask for mask, names in claims.items() if len(names) == 1}


def read(src: Path, options: ReadOptions) -> ReadResult:
    from datakit.scan import scan_images

    src = Path(src)
    if not detect(src):
        raise DatakitError(f"{src}: not a mask folder (needs images/ and masks/semantic/ or masks/instance/)")
    report = Report(options.on_invalid)
    names = _classes(src)
    files, refused = scan_images(src / "images")
    for entry in refused:
        report.skip(f"images/{entry['path']}", "", entry["reason"])
    semantic_files, instance_files = _mask_files(src / SEMANTIC), _mask_files(src / INSTANCE)
    categories = CategoryTable(report)
    for value, name in sorted((names or {}).items()):
        categories.add(name, value)
    images = ImageTable()
    for f in files:
        images.add(f"images/{f.path}", where=f"images/{f.path}")
    # image sizes first: a mask must have its image's size, never stand in for it
    frame = inspect_images(src, images, report, options)
    sizes = dict(zip(frame["path"].tolist(), zip(frame["width"].tolist(), frame["height"].tolist())))
    annotations = AnnotationTable()
    used: set[str] = set()
    semantic_of = _match_masks([f.path for f in files], semantic_files, report)
    instance_of = _match_masks([f.path for f in files], instance_files, report)
    semantic_masks: dict[str, str] = {}
    mask_sizes: dict[str, tuple[int, int]] = {}
    for f in files:
        path = f"images/{f.path}"
        semantic, instance = semantic_of.get(f.path), instance_of.get(f.path)
        classes = _read_fitting(src, semantic, path, sizes[path], report)
        if classes is not None:
            classes = _class_values(classes, semantic, names, categories, report)
        if classes is not None:
            used.add(semantic)
            semantic_masks[path] = semantic
            mask_sizes[path] = (classes.shape[1], classes.shape[0])
        objects = _read_fitting(src, instance, path, sizes[path], report)
        if objects is not None:
            used.add(instance)
            mask_sizes[path] = (objects.shape[1], objects.shape[0])
            _instances(objects, classes, instance, path, names, categories, annotations, report)
    frame["semantic_mask"] = pd.array([semantic_masks.get(p) for p in frame["path"].tolist()], dtype="string")
    _size_unknown_images_by_masks(frame, mask_sizes)
    manifest = build_manifest(src, images, annotations, categories.finish(), report, options,
                              source={"format": NAME}, frame=frame)
    return ReadResult(manifest, report, NAME, sorted(used))


def _read_fitting(src: Path, mask: str | None, image: str, size: tuple[object, object],
                  report: Report) -> np.ndarray | None:
    """A mask's values, or None when there is no mask or it is refused for its size."""
    if mask is None:
        return None
    values = geometry.read_label_png(src / mask)
    return values if mask_fits(values.shape, mask, image, size, report) else None


def _size_unknown_images_by_masks(frame: pd.DataFrame, mask_sizes: dict[str, tuple[int, int]]) -> None:
    """An unreadable image has no size of its own; its masks' size is the one the data set declares."""
    unknown = frame["width"].isna() & frame["path"].isin(list(mask_sizes))
    for column, axis in (("width", 0), ("height", 1)):  # one pass, not a scan of the frame per image
        frame.loc[unknown, column] = [mask_sizes[path][axis] for path in frame.loc[unknown, "path"]]


def _class_name(value: int, names: dict[int, str] | None) -> str | None:
    if names is not None:
        return names.get(value)
    return f"class_{value}"


def _class_values(values: np.ndarray, semantic: str, names: dict[int, str] | None, categories: CategoryTable,
                  report: Report) -> np.ndarray | None:
    unknown = []
    for value in (int(v) for v in np.unique(values)):
        if value == IGNORE or (value == 0 and (names is None or 0 not in names)):
            continue
        name = _class_name(value, names)
        if name is None:
            unknown.append(value)
        elif name not in categories:
            categories.add(name, value)
    if unknown:
        report.invalid(semantic, "", f"class value(s) {unknown} are not in classes.txt; class map not used")
        return None
    return values


def _instances(objects: np.ndarray, classes: np.ndarray | None, instance: str, image: str,
               names: dict[int, str] | None, categories: CategoryTable, annotations: AnnotationTable,
               report: Report) -> None:
    background = {IGNORE} | ({0} if names is None or 0 not in names else set())
    for value in (int(v) for v in np.unique(objects)):
        if value == 0:
            continue
        mask = (objects == value).astype(np.uint8)
        where = f"object {value}"
        if classes is not None:
            if classes.shape != objects.shape:
                report.invalid(instance, where, f"instance map is {objects.shape[1]}x{objects.shape[0]} but the "
                                                f"class map is {classes.shape[1]}x{classes.shape[0]}")
                return
            inside = classes[mask > 0]
            inside = inside[~np.isin(inside, list(background))]
            if inside.size == 0:
                report.skip(instance, where, "its pixels have no class in the class map; left out")
                continue
            name = _class_name(int(np.bincount(inside).argmax()), names)
        else:
            name = "object"
            if name not in categories:
                categories.add(name)
        if name is None:
            report.skip(instance, where, "its class value is not in classes.txt; left out")
            continue
        annotations.add(image, name, geometry.mask_box(mask), area=float(mask.sum()), kind="mask_file",
                        segmentation={"path": instance, "value": value}, file=instance, where=where)


# ---------------------------------------------------------------------------------------------
# writing


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    lose_image_fields(images, report, "mask folders", labels=True, splits=True)
    ids = target_category_ids(manifest.categories, "keep_nonzero", report, "class values")
    if ids and max(ids.values()) >= IGNORE:
        raise DatakitError(f"8-bit class maps hold values up to {IGNORE - 1}; this manifest's largest class value is "
                           f"{max(ids.values())}")
    recode = {int(c["id"]): ids[c["name"]] for c in manifest.categories}
    source_palette = np.array(manifest.extra["mask_palette"], dtype=np.uint8) if manifest.extra.get("mask_palette") else None
    names = export_names([im.path for im in images])
    mask_names = _mask_names(list(names.values()))
    root = manifest.root()
    files = n_annotations = 0
    for im in images:
        if not place_image(manifest.image_path(im.path), output_path(out, f"images/{names[im.path]}"), options.images):
            report.skip(im.path, "", "image file not found; masks written, image not copied")
        files += options.images != "none"
        if im.width is None or im.height is None:
            report.skip(im.path, "", "image size unknown; masks not written")
            continue
        shape = (im.height, im.width)
        objects = label_maps.segmented_objects(im)
        for k, ann in enumerate(im.annotations, start=1):
            if ann["kind"] is None:
                report.lose(im.path, f"object {k} ({ann['category']})", "box only; not in the instance map")
            elif ann["iscrowd"]:
                # a crowd region becomes one ordinary instance: evaluators that ignore crowds will count it
                report.lose(im.path, f"object {k} ({ann['category']})", "iscrowd=1 has no mask-folder "
                                                                         "equivalent; written as one instance")
        if label_maps.single_source(objects):
            # keep the source's object ids, so a mask folder round-trips pixel for pixel
            objects = [(int(a["segmentation"]["value"]), a) for _, a in objects]
        classes = label_maps.class_map(im, shape, ids, recode, source_palette, root)
        instances = label_maps.instance_map(shape, objects, root, keep_void=False) if objects else np.zeros(shape, np.int64)
        mask_name = mask_names[names[im.path]]
        geometry.write_label_png(output_path(out, f"{SEMANTIC}/{mask_name}.png"), classes)
        geometry.write_label_png(output_path(out, f"{INSTANCE}/{mask_name}.png"), instances, sixteen_bit=True)
        files += 2
        n_annotations += len(objects)
    # '<value> <name>' lines are stripped when read: a name keeps no outer whitespace there
    written = names_for_list(list(ids), "classes.txt", report)
    lines = [f"{value} {written[name]}" for name, value in sorted(ids.items(), key=lambda kv: kv[1])]
    (out / "classes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return WriteResult(out, NAME, len(images), n_annotations, files + 1, report)


def _mask_names(image_names: list[str]) -> dict[str, str]:
    """Image name under images/ -> its masks' name under masks/*/, one the reader finds: the file
    stem where no other image has it (flat, as the shapes sample stores masks), else the image's
    path without its suffix (its sub-folders mirrored), or with it where only the suffix differs.
    Case counts: the reader matches masks to the images by name, and the images keep theirs."""
    return unique_names(image_names, [file_stem, without_suffix, lambda name: name], ignore_case=False)

