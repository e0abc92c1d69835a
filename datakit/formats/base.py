"""What every format module looks like, and the helpers all readers and writers share.

A format module defines::

    NAME: str
    DESCRIPTION: str                                             # one line, for listings
    def detect(src: Path) -> bool                               # cheap: file names, a peek at one file
    def read(src: Path, options: ReadOptions) -> ReadResult     # format -> manifest (in memory)
    def write(manifest, out: Path, options: WriteOptions) -> WriteResult  # manifest -> format

Readers collect plain columns (``ImageTable``, ``AnnotationTable``) and hand them to
``build_manifest``, which does what must not differ between formats: refusing unsafe paths,
reading image facts, the invalid-box policy (``clip|skip|fail``), unique ids and the tasks.
``Report`` counts and lists everything skipped, changed, remapped or lost, naming file and
position, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from datakit.errors import DatakitError
from datakit.regular_files import read_regular_file
from datakit.manifest import ANNOTATION_COLUMNS, Manifest, check_relative_path

ON_INVALID = ("clip", "skip", "fail")
IMAGE_MODES = ("copy", "symlink", "none")
# a box may overshoot the image by rounding noise (YOLO's 6-decimal normalized values are off by
# up to 1e-6 of the image side); within this fraction of the image side it is clipped without a
# report, beyond it (e.g. a box at 1.0003 of the width) the --on-invalid policy applies
BOX_TOLERANCE = 1e-5
BACKGROUND_NAMES = ("background", "_background_", "__background__")


# ---------------------------------------------------------------------------------------------
# options and results


@dataclass
class ReadOptions:
    on_invalid: str = "clip"
    # folder holding the images, relative to the source (COCO: overrides the search)
    image_dir: str | None = None
    workers: int | None = None
    verify: str = "structure"
    show_progress: bool = False
    # images over this many pixels get status too_large (None: imageinfo.DEFAULT_MAX_PIXELS)
    max_pixels: int | None = None
    # VOC corners are 1-based and inclusive by the standard; labelme's converter writes 0-based
    voc_one_based: bool = True
    # open image files that symlinks take outside the data set (None: $DATAKIT_ALLOW_OUTSIDE)
    allow_outside: bool | None = None
    # the image rows of the manifest being re-ingested (incremental): unchanged files are not read
    # again and keep their split and extra columns (see scan.inspect_paths)
    previous_images: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        check_policy(self.on_invalid)


@dataclass
class WriteOptions:
    # how image files reach the output: copied, symlinked, or not at all (annotations only)
    images: str = "copy"
    on_invalid: str = "clip"
    # also export images whose status is not "ok" (missing or broken files)
    include_broken: bool = False
    # imagefolder: one image per object (its box), filed under the object's category
    crop_objects: bool = False
    crop_padding: float = 0.0
    # yolo: "detect" writes boxes, "segment" writes polygons
    yolo_task: str = "detect"
    # decimals of normalized YOLO coordinates
    decimals: int = 6

    def __post_init__(self) -> None:
        check_policy(self.on_invalid)
        if self.images not in IMAGE_MODES:
            raise DatakitError(f"unknown images mode {self.images!r}; choose one of: {', '.join(IMAGE_MODES)}")
        if self.yolo_task not in ("detect", "segment"):
            raise DatakitError(f"unknown YOLO task {self.yolo_task!r}; choose detect or segment")


def check_policy(policy: str) -> None:
    if policy not in ON_INVALID:
        raise DatakitError(f"unknown --on-invalid {policy!r}; choose one of: {', '.join(ON_INVALID)}")


@dataclass
class Report:
    """Everything a reader or writer skipped, changed, remapped or could not represent.

    Every entry has ``path`` (the file) and ``reason`` (position first, then what happened), the
    shape ``render`` lists. ``invalid`` applies the ``--on-invalid`` policy: ``fail`` raises one
    line naming file and position, the others record a counted skip.
    """

    policy: str = "clip"
    skipped: list[dict[str, str]] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)
    remapped: list[dict[str, Any]] = field(default_factory=list)
    lossy: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def _entry(file: str, where: str, reason: str) -> dict[str, str]:
        return {"path": file, "reason": f"{where}: {reason}" if where else reason}

    def skip(self, file: str, where: str, reason: str) -> None:
        self.skipped.append(self._entry(file, where, reason))

    def invalid(self, file: str, where: str, reason: str) -> None:
        """An invalid thing in the input: fail now, or skip it and count it."""
        if self.policy == "fail":
            prefix = f"{file}: {where}: " if where else f"{file}: "
            raise DatakitError(f"{prefix}{reason} (use --on-invalid clip or skip to continue)")
        self.skip(file, where, reason)

    def change(self, file: str, where: str, reason: str) -> None:
        self.changed.append(self._entry(file, where, reason))

    def lose(self, file: str, where: str, reason: str) -> None:
        self.lossy.append(self._entry(file, where, reason))

    def remap(self, name: str, old: int | None, new: int, where: str) -> None:
        self.remapped.append({"category": name, "from": old, "to": new, "where": where})

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped, "changed": self.changed, "remapped": self.remapped, "lossy": self.lossy,
            "counts": {"skipped": len(self.skipped), "changed": len(self.changed),
                       "remapped": len(self.remapped), "lossy": len(self.lossy)},
        }


@dataclass
class ReadResult:
    manifest: Manifest
    report: Report
    format: str
    files: list[str] = field(default_factory=list)


@dataclass
class WriteResult:
    output: Path
    format: str
    images: int
    annotations: int
    files: int
    report: Report

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "format": self.format, "images": self.images,
                "annotations": self.annotations, "files": self.files, **self.report.as_dict()}


# ---------------------------------------------------------------------------------------------
# paths


def read_text(path: Path, shown: str | None = None) -> str:
    """A text file of a data set, as UTF-8 (a BOM is dropped); anything else is one clear line."""
    try:
        return read_regular_file(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatakitError(f"{shown or path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                           "save it as UTF-8") from None
    except OSError as exc:
        raise DatakitError(f"{shown or path}: cannot read ({exc.strerror or exc})") from None


def safe_relative(name: str, base: str = "") -> tuple[str, str | None]:
    """``name`` (relative to folder ``base`` inside the data set) as a path from the data set root.

    Returns the normalized posix path and None, or the name and why it is refused (absolute, or
    leaving the data set folder). Refused names are never opened, read or written.
    """
    text = str(name).replace("\\", "/")
    if not text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return text, "is absolute" if text else "is empty"
    joined = posixpath.normpath(posixpath.join(base, text)) if base else posixpath.normpath(text)
    if joined == ".." or joined.startswith("../") or joined == ".":
        return text, "leaves the data set folder"
    return joined, None


def relative_to_root(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def output_path(out: Path, relative: str) -> Path:
    """A file inside the output folder; a name that would leave it is refused, never written."""
    problem = check_relative_path(relative)
    if problem:
        raise DatakitError(f"output file name {relative!r} {problem}; refused")
    return out / relative


def common_folder(paths: Iterable[str]) -> str:
    """The folder every path shares ('' if none), so exports do not nest the source layout."""
    folders = [p.rsplit("/", 1)[0] if "/" in p else "" for p in paths]
    if not folders or "" in folders:
        return ""
    common = posixpath.commonpath(folders)
    return common


def export_names(paths: list[str]) -> dict[str, str]:
    """Manifest path -> file name in the export, with the shared leading folder removed."""
    prefix = common_folder(paths)
    cut = len(prefix) + 1 if prefix else 0
    return {p: p[cut:] for p in paths}


def unique_names(paths: Iterable[str], rules: list[Callable[[str], str]], ignore_case: bool = True) -> dict[str, str]:
    """Path -> a name no other path gets: the first rule whose name for it no other path shares
    (nor an earlier rule gave away), else the first rule's name, with a counter (``a_2``) where
    it is taken.

    Names are compared ignoring case (unless ``ignore_case`` is False: names that must mirror the
    images' own): ``A.txt`` and ``a.txt`` are one file on macOS and Windows, where an export made on
    Linux is often opened."""
    fold = str.casefold if ignore_case else str
    pending = list(dict.fromkeys(paths))
    names: dict[str, str] = {}
    taken: set[str] = set()
    for rule in rules:
        proposed = {p: rule(p) for p in pending}
        counts = Counter(fold(name) for name in proposed.values())
        pending = []
        for path, name in proposed.items():
            if counts[fold(name)] == 1 and fold(name) not in taken:
                names[path] = name
                taken.add(fold(name))
            else:
                pending.append(path)
    for path in pending:
        base = name = rules[0](path)
        n = 2
        while fold(name) in taken:
            name, n = f"{base}_{n}", n + 1
        names[path] = name
        taken.add(fold(name))
    return names


def file_stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def without_suffix(path: str) -> str:
    return posixpath.splitext(path)[0]


def flat_names(paths: list[str], no_whitespace: bool = False) -> dict[str, str]:
    """Manifest path -> a stem unique in one flat folder (VOC, crops): the file stem; where stems
    collide, the path with '/' turned into '__'; where those collide too (``a.jpg`` and ``a.png``),
    the same with the suffix kept (``images__a.jpg``); a counter as the last resort.

    ``no_whitespace`` turns runs of whitespace into '_' first: VOC's split lists are whitespace
    separated, so a name with a space would be cut in two there.
    """
    clean = (lambda name: re.sub(r"\s+", "_", name)) if no_whitespace else (lambda name: name)
    return unique_names(paths, [
        lambda p: clean(file_stem(p)),
        lambda p: clean(without_suffix(p).replace("/", "__")),
        lambda p: clean(p.replace("/", "__")),
    ])


def stem_names(paths: list[str]) -> dict[str, str]:
    """Path -> its path without the suffix, or with it where two files differ only in suffix
    (``a.jpg`` and ``a.png``), so that files named after an image (``a.json``, ``a.txt``) stay apart."""
    return unique_names(paths, [without_suffix, lambda p: p])


def place_image(source: Path, dest: Path, mode: str) -> bool:
    """Copy or symlink one image into an export; False when the source file is not there."""
    if mode == "none":
        return True
    if not source.is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(source.resolve(), dest)
    else:
        shutil.copyfile(source, dest)
    return True


# ---------------------------------------------------------------------------------------------
# categories


class CategoryTable:
    """The name -> id table a reader builds; names are the key, ids follow the source when given.

    A name seen again with another id (e.g. a second COCO file numbering differently) keeps its
    first id; the change is reported, never silent.
    """

    def __init__(self, report: Report) -> None:
        self._report = report
        self._ids: dict[str, int | None] = {}
        self._extra: dict[str, dict[str, Any]] = {}
        self._by_source: dict[tuple[str, int], str] = {}

    def add(self, name: str, source_id: int | None = None, file: str = "", **extra: Any) -> str:
        if name not in self._ids:
            self._ids[name] = source_id
            self._extra[name] = {k: v for k, v in extra.items() if v not in (None, "")}
        elif source_id is not None and self._ids[name] is None:
            self._ids[name] = source_id
        elif source_id is not None and self._ids[name] != source_id:
            self._report.remap(name, source_id, int(self._ids[name]), file)  # type: ignore[arg-type]
        return name

    def __contains__(self, name: str) -> bool:
        return name in self._ids

    @property
    def names(self) -> list[str]:
        return list(self._ids)

    def finish(self) -> list[dict[str, Any]]:
        """Header categories; names without a source id get the next free ids in name order."""
        taken = {i for i in self._ids.values() if i is not None}
        next_id = (max(taken) + 1) if taken else 0
        for name in sorted(n for n, i in self._ids.items() if i is None):
            self._ids[name] = next_id
            next_id += 1
        seen: dict[int, str] = {}
        for name, cid in self._ids.items():
            if cid in seen:
                raise DatakitError(f"categories {seen[cid]!r} and {name!r} both have id {cid}")
            seen[int(cid)] = name  # type: ignore[arg-type]
        return [{"id": int(cid), "name": name, **self._extra[name]}  # type: ignore[arg-type]
                for name, cid in sorted(self._ids.items(), key=lambda kv: kv[1])]


# what str.splitlines breaks a line at: a name holding one would read back as two lines
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def names_for_list(names: Iterable[str], file: str, report: Report, separators: str = "",
                   hash_comments: bool = False) -> dict[str, str]:
    """Category name -> the name a class-list file (VOC's labelmap.txt, a mask folder's classes.txt)
    can hold so that it reads back the same: readers strip each line, and may split it at
    ``separators`` or skip it as a comment when it starts with '#' (``hash_comments``).

    A name that would not read back ('#first' taken for a comment, 'a:b' cut at the colon, ' lead'
    losing its space) is written with those characters as '_' and its outer whitespace dropped,
    unique among the others, and each such change is reported as not representable: never a class
    list whose line numbers, and so class values, silently shift."""
    names = list(names)
    bad = re.compile("[" + re.escape(_LINE_BREAKS + separators) + "]")
    written: dict[str, str] = {}
    taken = set(names)
    for name in names:
        fixed = bad.sub("_", name).strip()
        if hash_comments and fixed.startswith("#"):
            fixed = "_" + fixed[1:]
        if fixed == name:
            written[name] = name
            continue
        base, n = fixed or "_", 2
        fixed = base
        while fixed in taken:
            fixed, n = f"{base}_{n}", n + 1
        taken.add(fixed)
        written[name] = fixed
        report.lose(file, "", f"category {name!r} cannot be written there as it is (a class list line is "
                              f"stripped{', split at ' + repr(separators) if separators else ''}"
                              f"{', a comment when it starts with #' if hash_comments else ''}); written as {fixed!r}")
    return written


def object_categories(categories: list[dict[str, Any]], images: list["ExportImage"], report: Report,
                      where: str) -> list[dict[str, Any]]:
    """Categories for an object format (COCO, YOLO): a background class that no object uses (VOC
    and mask folders have one for their class maps) is left out. Silently: no object or id is
    lost, and a round trip of datakit's own VOC export must not print a notice."""
    used = {a["category"] for im in images for a in im.annotations}
    return [c for c in categories if c["name"] not in BACKGROUND_NAMES or c["name"] in used]


def target_category_ids(categories: list[dict[str, Any]], scheme: str, report: Report, where: str) -> dict[str, int]:
    """Category name -> id in an export, by the target format's rule; every change is reported.

    ``keep_nonzero`` (COCO, mask folders): header ids, shifted by one when an id is 0 (0 means
    background to many trainers, torchvision's detectors among them). ``contiguous0`` (YOLO):
    0..K-1 in header-id order. ``voc``: background 0, the others 1..K in header-id order.
    """
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    if scheme == "keep_nonzero":
        shift = 1 if any(int(c["id"]) == 0 and c["name"] not in BACKGROUND_NAMES for c in ordered) else 0
        mapping = {c["name"]: int(c["id"]) + shift for c in ordered}
    elif scheme == "contiguous0":
        mapping = {c["name"]: i for i, c in enumerate(ordered)}
    elif scheme == "voc":
        mapping = {}
        background = [c for c in ordered if c["name"] in BACKGROUND_NAMES]
        if background:
            mapping[background[0]["name"]] = 0
        rest = [c for c in ordered if c["name"] not in mapping]
        mapping.update({c["name"]: i for i, c in enumerate(rest, start=1)})
    else:
        raise AssertionError(scheme)
    for c in ordered:
        if mapping[c["name"]] != int(c["id"]):
            report.remap(c["name"], int(c["id"]), mapping[c["name"]], where)
    return mapping


# ---------------------------------------------------------------------------------------------
# the tables a reader fills


@dataclass
class ImageTable:
    """Images an annotation source names; ``path`` is relative to the data set root and safe."""

    path: list[str] = field(default_factory=list)
    width: list[int | None] = field(default_factory=list)
    height: list[int | None] = field(default_factory=list)
    label: list[str | None] = field(default_factory=list)
    split: list[str | None] = field(default_factory=list)
    semantic_mask: list[str | None] = field(default_factory=list)
    source_id: list[str | None] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def add(self, path: str, width: int | None = None, height: int | None = None, label: str | None = None,
            split: str | None = None, semantic_mask: str | None = None, where: str = "",
            source_id: str | None = None) -> None:
        self.path.append(path)
        self.width.append(width)
        self.height.append(height)
        self.label.append(label)
        self.split.append(split)
        self.semantic_mask.append(semantic_mask)
        self.source_id.append(source_id)
        self.where.append(where)


@dataclass
class AnnotationTable:
    """One row per object; ``image`` is the image's path, ``segmentation`` JSON text or None."""

    id: list[str | None] = field(default_factory=list)
    image: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    w: list[float] = field(default_factory=list)
    h: list[float] = field(default_factory=list)
    area: list[float | None] = field(default_factory=list)
    iscrowd: list[int] = field(default_factory=list)
    kind: list[str | None] = field(default_factory=list)
    segmentation: list[str | None] = field(default_factory=list)
    attributes: list[str | None] = field(default_factory=list)
    file: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def add(self, image: str, category: str, box: tuple[float, float, float, float], *, id: str | None = None,
            area: float | None = None, iscrowd: int = 0, kind: str | None = None, segmentation: Any = None,
            attributes: dict[str, Any] | None = None, file: str = "", where: str = "") -> None:
        self.id.append(id)
        self.image.append(image)
        self.category.append(category)
        self.x.append(box[0])
        self.y.append(box[1])
        self.w.append(box[2])
        self.h.append(box[3])
        self.area.append(area)
        self.iscrowd.append(iscrowd)
        self.kind.append(kind)
        self.segmentation.append(None if segmentation is None else
                                 segmentation if isinstance(segmentation, str) else json.dumps(segmentation))
        self.attributes.append(json.dumps(attributes) if attributes else None)
        self.file.append(file)
        self.where.append(where)

    def __len__(self) -> int:
        return len(self.image)

    def remove(self, rows: set[int]) -> None:
        """Drop rows: objects refused after they were collected (their mask is of the wrong size)."""
        for name in self.__dataclass_fields__:
            column = getattr(self, name)
            setattr(self, name, [value for i, value in enumerate(column) if i not in rows])


# ---------------------------------------------------------------------------------------------
# building the manifest


def build_manifest(
    root: Path,
    images: ImageTable,
    annotations: AnnotationTable,
    categories: list[dict[str, Any]],
    report: Report,
    options: ReadOptions,
    source: dict[str, Any],
    extra: dict[str, Any] | None = None,
    frame: pd.DataFrame | None = None,
) -> Manifest:
    """The manifest for what a reader collected; image_root is ``root`` (absolute) until saved.

    ``frame`` is the result of ``inspect_images`` when the reader needed image sizes first.
    """
    if frame is None:
        frame = inspect_images(root, images, report, options)
    sizes = {p: (w, h) for p, w, h in zip(frame["path"].tolist(), frame["width"].tolist(), frame["height"].tolist())}
    ann = _annotation_frame(annotations, frame, sizes, report)
    tasks = []
    if frame["label"].notna().any():
        tasks.append("classification")
    if len(ann):
        tasks.append("detection")
        if ann["segmentation_kind"].notna().any():
            tasks.append("instance_segmentation")
    if frame["semantic_mask"].notna().any():
        tasks.append("semantic_segmentation")
    return Manifest(images=frame, annotations=ann, categories=categories, tasks=tasks,
                    image_root=str(root.resolve()), source=source, extra=extra or {})


def inspect_images(root: Path, images: ImageTable, report: Report, options: ReadOptions) -> pd.DataFrame:
    """Image rows for the table: file facts read in parallel, declared sizes where no file is."""
    from datakit.manifest import outside_allowed
    from datakit.scan import inspect_paths

    first: dict[str, int] = {}
    for i, path in enumerate(images.path):
        if path in first:
            report.change(images.where[i] or path, "", f"image {path!r} is listed again (first at "
                          f"{images.where[first[path]] or 'an earlier entry'}); its annotations join the first entry")
        else:
            first[path] = i
    keep = sorted(first.values())
    paths = [images.path[i] for i in keep]
    frame = inspect_paths(root, paths, workers=options.workers, verify=options.verify, show_progress=options.show_progress,
                          max_pixels=options.max_pixels, allow_outside=outside_allowed(options.allow_outside),
                          previous=options.previous_images)
    for column in ("label", "semantic_mask", "source_id"):
        frame[column] = pd.array([getattr(images, column)[i] for i in keep], dtype="string")
    # a split the format's files give wins; otherwise an unchanged file keeps the one it had
    frame["split"] = pd.Series(pd.array([images.split[i] for i in keep], dtype="string"), index=frame.index).fillna(
        frame["split"].astype("string"))
    declared_w = pd.Series([images.width[i] for i in keep], dtype="Int64", index=frame.index)
    declared_h = pd.Series([images.height[i] for i in keep], dtype="Int64", index=frame.index)
    found = frame["width"].notna()
    differs = found & declared_w.notna() & ((frame["width"] != declared_w) | (frame["height"] != declared_h)).fillna(False)
    for row in np.flatnonzero(differs.to_numpy(dtype=bool)):
        report.change(images.where[keep[row]] or paths[row], "",
                      f"declared size {declared_w.iloc[row]}x{declared_h.iloc[row]} but the file is "
                      f"{frame['width'].iloc[row]}x{frame['height'].iloc[row]} as displayed; the file's size is used")
    # a missing or unreadable file still has the size its annotation file declares, within the pixel
    # limit an image file has (a declared 1e9 x 1e9 made a mask export allocate exabytes)
    from datakit.imageinfo import pixel_limit_problem

    for row in np.flatnonzero((~found & declared_w.notna() & declared_h.notna()).to_numpy(dtype=bool)):
        problem = pixel_limit_problem(int(declared_w.iloc[row]), int(declared_h.iloc[row]), options.max_pixels)
        if problem:
            report.change(images.where[keep[row]] or paths[row], "", f"declared size {problem}; not used")
            declared_w.iloc[row] = declared_h.iloc[row] = pd.NA
    frame["width"] = frame["width"].fillna(declared_w)
    frame["height"] = frame["height"].fillna(declared_h)
    return frame


def mask_fits(mask_shape: tuple[int, ...], mask_name: str, image: str, size: tuple[Any, Any] | None,
              report: Report) -> bool:
    """Whether a class or instance map (its array shape, rows first) has its image's size (width,
    height; unknown passes). One that does not is refused, naming both sizes: it is never resized,
    nor taken for the image's size."""
    width, height = _size_or_nan(size)
    if not (np.isfinite(width) and np.isfinite(height)) or tuple(mask_shape[:2]) == (int(height), int(width)):
        return True
    report.invalid(mask_name, "", f"mask is {mask_shape[1]}x{mask_shape[0]} but its image {image} is "
                                  f"{int(width)}x{int(height)}; mask not used")
    return False


def _annotation_frame(table: AnnotationTable, images: pd.DataFrame, sizes: dict[str, tuple[Any, Any]], report: Report) -> pd.DataFrame:
    ids_by_path = dict(zip(images["path"].tolist(), images["id"].tolist()))
    n = len(table)
    boxes = np.array([table.x, table.y, table.w, table.h], dtype=np.float64).T.reshape(n, 4)
    image_of = pd.Series(table.image, dtype=object)
    dims = np.stack([image_of.map({p: _size_or_nan(s)[k] for p, s in sizes.items()}).to_numpy(dtype=np.float64, na_value=np.nan)
                     for k in (0, 1)], axis=1).reshape(n, 2)
    keep = np.ones(n, dtype=bool)
    for i in np.flatnonzero(~np.array([p in ids_by_path for p in table.image], dtype=bool)):
        report.invalid(table.file[i], table.where[i], f"image {table.image[i]!r} is not in the data set")
        keep[i] = False
    x, y, w, h = boxes.T
    W, H = dims.T
    finite = np.isfinite(boxes).all(axis=1)
    bad_size = ~finite | (w <= 0) | (h <= 0)
    known = np.isfinite(W) & np.isfinite(H)
    with np.errstate(invalid="ignore"):
        over = np.maximum.reduce([-x, -y, x + w - W, y + h - H])
    with np.errstate(invalid="ignore"):
        tolerance = BOX_TOLERANCE * np.maximum(W, H)
    outside = keep & ~bad_size & known & (over > tolerance)
    noise = keep & ~bad_size & known & (over > 0) & ~outside
    for i in np.flatnonzero(keep & bad_size):
        report.invalid(table.file[i], table.where[i], f"box {_fmt_box(boxes[i])} has zero or negative size")
        keep[i] = False
    for i in np.flatnonzero(outside):
        reason = f"box {_fmt_box(boxes[i])} extends outside the {int(W[i])}x{int(H[i])} image"
        if report.policy == "clip":
            clipped = _clip(boxes[i], W[i], H[i])
            if clipped[2] <= 0 or clipped[3] <= 0:
                report.skip(table.file[i], table.where[i], reason + " and nothing is left inside it")
                keep[i] = False
            else:
                report.change(table.file[i], table.where[i], f"{reason}; clipped to {_fmt_box(clipped)}")
                boxes[i] = clipped
        else:
            report.invalid(table.file[i], table.where[i], reason)
            keep[i] = False
    for i in np.flatnonzero(noise):
        boxes[i] = _clip(boxes[i], W[i], H[i])
    rows = np.flatnonzero(keep)
    areas = np.array([np.nan if a is None else a for a in table.area], dtype=np.float64).reshape(n)
    missing_area = ~np.isfinite(areas)
    areas[missing_area] = boxes[missing_area, 2] * boxes[missing_area, 3]
    # a clipped object cannot cover more than its clipped box (a source's area counted the part outside)
    clipped = outside | noise
    areas[clipped] = np.minimum(areas[clipped], boxes[clipped, 2] * boxes[clipped, 3])
    given_ids = [table.id[i] for i in rows]
    ids = _unique_ids(given_ids, [table.file[i] for i in rows], [table.where[i] for i in rows], report)
    take = rows.tolist()
    frame = pd.DataFrame({
        "id": pd.array(ids, dtype="string"),
        "image_id": pd.array([ids_by_path[table.image[i]] for i in take], dtype="string"),
        "category": pd.array([table.category[i] for i in take], dtype="string"),
        "bbox_x": boxes[rows, 0], "bbox_y": boxes[rows, 1], "bbox_w": boxes[rows, 2], "bbox_h": boxes[rows, 3],
        "area": areas[rows],
        "iscrowd": pd.array([table.iscrowd[i] for i in take], dtype="Int64"),
        "segmentation_kind": pd.array([table.kind[i] for i in take], dtype="string"),
        "segmentation": pd.array([table.segmentation[i] for i in take], dtype="string"),
        "attributes": pd.array([table.attributes[i] for i in take], dtype="string"),
    })
    return frame[list(ANNOTATION_COLUMNS)]


def _size_or_nan(size: tuple[Any, Any] | None) -> tuple[float, float]:
    if size is None or size[0] is None or size[1] is None or pd.isna(size[0]) or pd.isna(size[1]):
        return (np.nan, np.nan)
    return (float(size[0]), float(size[1]))


def _clip(box: np.ndarray, width: float, height: float) -> np.ndarray:
    from datakit.geometry import clip_box

    return np.array(clip_box(box.tolist(), width, height))


def _fmt_box(box: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _unique_ids(ids: list[str | None], files: list[str], wheres: list[str], report: Report) -> list[str]:
    """Given ids where unique, generated ones elsewhere; a duplicate given id is reported."""
    seen: set[str] = set()
    out: list[str | None] = []
    for i, value in enumerate(ids):
        if value is not None and value in seen:
            report.change(files[i], wheres[i], f"annotation id {value} is used twice; this one gets a new id")
            value = None
        if value is not None:
            seen.add(value)
        out.append(value)
    counter = 0
    for i, value in enumerate(out):
        if value is None:
            counter += 1
            while f"n{counter}" in seen:
                counter += 1
            out[i] = f"n{counter}"
            seen.add(out[i])  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# what writers read


@dataclass
class ExportImage:
    id: str
    path: str
    width: int | None
    height: int | None
    channels: int | None
    label: str | None
    split: str | None
    semantic_mask: str | None
    annotations: list[dict[str, Any]]
    source_id: str | None = None


def export_images(manifest: Manifest, options: WriteOptions, report: Report) -> list[ExportImage]:
    """Images to export (status ok unless include_broken) with their annotations, in path order.

    Annotation dicts carry bbox as a tuple, the parsed segmentation and attributes.
    """
    images = manifest.images
    usable = images if options.include_broken else images[images["status"] == "ok"]
    excluded = images[~images["id"].isin(set(usable["id"].tolist()))]
    by_image: dict[str, list[dict[str, Any]]] = {}
    ann = manifest.annotations
    columns = [ann[c].tolist() for c in ("id", "image_id", "category", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                                         "area", "iscrowd", "segmentation_kind")]
    areas = ann["area"].to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    crowds = ann["iscrowd"].fillna(0).astype(int).tolist()
    kinds = [None if _missing(k) else k for k in ann["segmentation_kind"].tolist()]
    segmentations = _parse_json_column(ann["segmentation"])
    attributes = _parse_json_column(ann["attributes"])
    for aid, image_id, cat, x, y, w, h, area, crowd, kind, seg, attrs in zip(
        *columns[:7], areas, crowds, kinds, segmentations, attributes
    ):
        by_image.setdefault(image_id, []).append({
            "id": aid, "category": cat, "bbox": (x, y, w, h), "area": None if area != area else area,
            "iscrowd": crowd, "kind": kind, "segmentation": seg, "attributes": attrs or {},
        })
    for path, status, image_id in zip(excluded["path"].tolist(), excluded["status"].tolist(), excluded["id"].tolist()):
        n = len(by_image.get(image_id, []))
        report.skip(path, "", f"image status is {status!r}; not exported" + (f" with its {n} annotation(s)" if n else "")
                    + " (--include-broken exports it)")
    out = []
    missing_column = pd.Series([None] * len(usable), dtype=object)
    semantic = usable["semantic_mask"] if "semantic_mask" in usable.columns else missing_column
    source_ids = usable["source_id"] if "source_id" in usable.columns else missing_column
    for image_id, path, w, h, ch, label, split, sem, source_id in zip(
        usable["id"].tolist(), usable["path"].tolist(), usable["width"].tolist(), usable["height"].tolist(),
        usable["channels"].tolist(), usable["label"].tolist(), usable["split"].tolist(), semantic.tolist(),
        source_ids.tolist(),
    ):
        out.append(ExportImage(
            id=image_id, path=path, width=_int_or_none(w), height=_int_or_none(h), channels=_int_or_none(ch),
            label=None if label is None or pd.isna(label) else label,
            split=None if split is None or pd.isna(split) else split,
            semantic_mask=None if sem is None or pd.isna(sem) else sem,
            annotations=by_image.get(image_id, []),
            source_id=None if _missing(source_id) else str(source_id),
        ))
    out.sort(key=lambda im: im.path)
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _parse_json_column(column: pd.Series) -> list[Any]:
    """Parse a column of JSON texts in one json.loads call (100k separate calls cost seconds)."""
    texts = ["null" if _missing(t) else t for t in column.tolist()]
    return json.loads("[" + ",".join(texts) + "]") if texts else []


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def by_split(images: list[ExportImage]) -> Iterator[tuple[str | None, list[ExportImage]]]:
    """Images grouped by split (train, val, test, then unsplit), each group in path order."""
    order = {"train": 0, "val": 1, "test": 2, None: 3}
    groups: dict[str | None, list[ExportImage]] = {}
    for image in images:
        groups.setdefault(image.split, []).append(image)
    for split in sorted(groups, key=lambda s: order.get(s, 4)):
        yield split, groups[split]


def lose_image_fields(images: list[ExportImage], report: Report, format_label: str, labels: bool = False,
                      splits: bool = False) -> None:
    """Report the image-level labels and the splits (train/val/test) a format has no place for, when
    the images have any: a re-ingest of the export has none, and nothing else would say so."""
    for field_name, lost, what in (("label", labels, "image-level labels"), ("split", splits, "splits (train/val/test)")):
        count = sum(1 for im in images if getattr(im, field_name)) if lost else 0
        if count:
            report.lose("", "", f"{what} are not part of {format_label}; not written ({count} image(s) had one)")
