"""ImageFolder (classification): ``<class>/<image>`` or ``<split>/<class>/<image>``.

Read: the folder ingest's own scan and layout rules (class folders, split folders), so both give
the same labels. Written: labelled images filed under their class, in split folders when the
manifest has splits. With ``crop_objects``, each object's box is cut out of its image and filed
under the object's category instead: a detection data set becomes a classification one.
"""

from __future__ import annotations

import math
import posixpath
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from datakit.errors import DatakitError
from datakit.formats.base import (
    CategoryTable,
    ExportImage,
    ImageTable,
    AnnotationTable,
    ReadOptions,
    ReadResult,
    Report,
    WriteOptions,
    WriteResult,
    build_manifest,
    export_images,
    flat_names,
    output_path,
    place_image,
)
from datakit.manifest import Manifest
from datakit.regular_files import read_regular_file

NAME = "imagefolder"
DESCRIPTION = "class sub-folders (classification), optionally inside train/val/test folders"


def detect(src: Path) -> bool:
    # any folder of images is one; detection is left to the folder ingest (see DETECT_ORDER)
    return False


def read(src: Path, options: ReadOptions) -> ReadResult:
    from datakit.scan import assign_folder_labels, detect_layout, scan_images

    src = Path(src)
    if not src.is_dir():
        raise DatakitError(f"{src}: not a folder")
    report = Report(options.on_invalid)
    files, refused = scan_images(src)
    for entry in refused:
        report.skip(entry["path"], "", entry["reason"])
    layout = detect_layout(files, has_labels_csv=False)
    if layout not in ("classes", "splits"):
        raise DatakitError(f"{src}: not an ImageFolder data set: images must be in <class>/ or <split>/<class>/ folders")
    for note in assign_folder_labels(files, layout):
        report.change(note["path"], "", note["reason"])  # kept, without a label or split
    categories = CategoryTable(report)
    images = ImageTable()
    for f in files:
        if f.label is not None:
            categories.add(f.label)
        images.add(f.path, label=f.label, split=f.split, where=f.path)
    manifest = build_manifest(src, images, AnnotationTable(), categories.finish(), report, options,
                              source={"format": NAME, "layout": layout})
    return ReadResult(manifest, report, NAME, [])


def _folder_name(name: str, report: Report) -> str:
    """A class name as one safe folder name; characters that would make a path are replaced."""
    safe = name.replace("/", "_").replace("\\", "_")
    if safe in ("", ".", ".."):
        safe = f"_{safe}_"
    if safe != name:
        report.lose("", "", f"class {name!r} written as folder {safe!r} (not a plain folder name)")
    return safe


def write(manifest: Manifest, out: Path, options: WriteOptions) -> WriteResult:
    report = Report(options.on_invalid)
    images = export_images(manifest, options, report)
    folders: dict[str, str] = {}

    def folder_of(name: str) -> str:
        if name not in folders:
            folders[name] = _folder_name(name, report)
        return folders[name]

    if options.crop_objects:
        written, sources = _write_crops(manifest, images, out, options, report, folder_of)
        return WriteResult(out, NAME, sources, len(written), len(written), report)
    files = 0
    unlabeled = 0
    taken: set[str] = set()
    flat = flat_names([im.path for im in images])
    for im in images:
        if im.label is None:
            unlabeled += 1
            continue
        prefix = f"{im.split}/" if im.split else ""
        name = posixpath.basename(im.path)
        target = f"{prefix}{folder_of(im.label)}/{name}"
        if target in taken:
            # two source folders hold the same file name for one class: keep both, by path
            target = f"{prefix}{folder_of(im.label)}/{flat[im.path]}{posixpath.splitext(name)[1]}"
        taken.add(target)
        if not place_image(manifest.image_path(im.path), output_path(out, target), options.images):
            report.skip(im.path, "", "image file not found; not written")
            continue
        files += 1
    if unlabeled:
        report.skip("", "", f"{unlabeled} image(s) without a label left out (ImageFolder files images by label)")
    return WriteResult(out, NAME, files, 0, files, report)


def _write_crops(manifest: Manifest, images: list[ExportImage], out: Path, options: WriteOptions,
                 report: Report, folder_of: Callable[[str], str]) -> tuple[list[Path], int]:
    """One crop per object, filed under its category; returns the crops and how many images gave some."""
    written: list[Path] = []
    sources = 0
    stems = flat_names([im.path for im in images])
    pad = options.crop_padding
    for im in images:
        if not im.annotations:
            continue
        pixels = _decode_bgr(manifest.image_path(im.path))
        if pixels is None:
            report.skip(im.path, "", f"cannot read the image; its {len(im.annotations)} object(s) not cropped")
            continue
        height, width = pixels.shape[:2]
        before = len(written)
        suffix = Path(im.path).suffix.lower() if Path(im.path).suffix.lower() in (".png", ".jpg", ".jpeg") else ".png"
        for k, ann in enumerate(im.annotations, start=1):
            where = f"object {k} ({ann['category']})"
            if ann["iscrowd"]:
                report.skip(im.path, where, "iscrowd=1 is a region of many objects; not cropped")
                continue
            x, y, w, h = ann["bbox"]
            x1, y1 = max(0, math.floor(x - pad * w)), max(0, math.floor(y - pad * h))
            x2, y2 = min(width, math.ceil(x + w + pad * w)), min(height, math.ceil(y + h + pad * h))
            if x2 <= x1 or y2 <= y1:
                report.skip(im.path, where, "box has no pixels inside the image; not cropped")
                continue
            prefix = f"{im.split}/" if im.split else ""
            target = output_path(out, f"{prefix}{folder_of(ann['category'])}/{stems[im.path]}_{k}{suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), pixels[y1:y2, x1:x2]):
                raise DatakitError(f"{target}: cannot write the crop")
            written.append(target)
        sources += len(written) > before
    return written, sources


def _decode_bgr(path: Path) -> np.ndarray | None:
    """The image as OpenCV writes it (BGR, EXIF orientation applied), or None when it cannot be read
    (a FIFO where the image was is not waited on)."""
    try:
        data = np.frombuffer(read_regular_file(path), dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
