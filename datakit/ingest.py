"""`datakit ingest`: scan an image folder into a manifest, in parallel and incrementally.

Layouts: class sub-folders (``SRC/<class>/...``), split folders (``SRC/train|val|test/<class>/...``),
a flat folder with a labels CSV (``file,label[,split]``), and an unlabeled folder. Broken files are
kept as rows with a ``status`` and ``reason``; nothing is skipped silently. Re-running on the same
folder re-reads only new or changed files (path + size + mtime) and keeps ids stable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from datakit import imageinfo
from datakit.errors import CheckFailed, DatakitError
from datakit.scan import (  # noqa: F401 - image_id, inspect_paths, scan_images, detect_layout: the ingest API
    _CHUNK_ROWS,
    BAD_NAME_REASON,
    OUTSIDE_REASON,
    SPLIT_ALIASES,
    ScannedFile,
    assign_folder_labels,
    compare_with_previous,
    detect_layout,
    _inspect_all,
    _rows_to_frame,
    image_id,
    inspect_paths,
    scan_images,
)
from datakit.manifest import (
    HEADER_NAME,
    IMAGE_COLUMNS,
    Manifest,
    check_image_root,
    load_manifest,
    manifest_exists,
    outside_allowed,
    resolve_location,
    save_manifest,
)

LAYOUTS = ("auto", "classes", "splits", "flat", "unlabeled")
# header ``extra`` key: categories a folder ingest dropped, so their ids are never given to another name
RETIRED_KEY = "retired_categories"
LABEL_COLUMNS = ("file", "label", "split")


@dataclass
class IngestResult:
    """What an ingest did (folder or annotation format); the CLI renders it, ``--json`` prints ``as_dict()``."""

    manifest_path: Path
    layout: str
    total: int
    status_counts: dict[str, int]
    label_counts: dict[str, int]
    broken: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    # usable images kept without a label or split (a file beside the class folders): not skipped
    kept_unlabeled: list[dict[str, str]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    # categories of the previous manifest this one no longer has ({"id", "name"}): their class
    # folders (or labels) are gone, or the annotation files no longer declare them
    categories_dropped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # an ingest from an annotation format (--format): its objects and what its reader reported
    format: str = ""
    annotations: int = 0
    annotation_counts: dict[str, int] = field(default_factory=dict)
    report: Any = None  # datakit.formats.base.Report

    @property
    def from_format(self) -> bool:
        return self.report is not None

    def as_dict(self) -> dict[str, Any]:
        data = self._folder_dict()
        if self.from_format:
            data.update(format=self.format, annotations=self.annotations,
                        annotations_per_category=self.annotation_counts, report=self.report.as_dict())
        return data

    def _folder_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest_path),
            "layout": self.layout,
            "images": self.total,
            "status": self.status_counts,
            "labels": self.label_counts,
            "broken": self.broken,
            "skipped": self.skipped,
            "kept_unlabeled": self.kept_unlabeled,
            "incremental": {
                "new": len(self.new),
                "changed": len(self.changed),
                "deleted": len(self.deleted),
                "unchanged": self.unchanged,
                "new_files": self.new,
                "changed_files": self.changed,
                "deleted_files": self.deleted,
            },
            "categories_dropped": self.categories_dropped,
            "seconds": round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------------------------
# scanning


def check_output(src: str | os.PathLike[str], output: str | os.PathLike[str], allow_outside: bool | None) -> None:
    """Refuse an output that is (or would overwrite) the input, before anything is read or written."""
    out = Path(output)
    if out.name != HEADER_NAME and out.exists() and not out.is_dir():
        raise DatakitError(f"{output}: exists and is a file; a manifest is a folder: choose a new name (e.g. NAME.manifest)")
    location = resolve_location(output).resolve()
    source = Path(src).resolve()
    if location == source or (source.is_file() and location == source.parent and out.name == HEADER_NAME):
        raise DatakitError(f"{output}: is the input itself; write the manifest beside it (e.g. {Path(src).name}.manifest)")
    if source.is_dir():
        check_image_root(os.path.relpath(source, location), str(output), allow_outside)


def read_labels_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatakitError(f"{path}: labels file does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatakitError(f"{path}: labels file is empty (expected columns: file,label[,split])") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatakitError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    unknown = [c for c in table.columns if c not in LABEL_COLUMNS]
    if unknown:
        raise DatakitError(
            f"{path}: unknown column(s) {', '.join(repr(c) for c in unknown)}; expected: file, label and optionally split"
        )
    missing = [c for c in ("file", "label") if c not in table.columns]
    if missing:
        raise DatakitError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; expected: file, label[, split]")
    for col in table.columns:
        table[col] = table[col].str.strip()
    if "split" in table.columns:
        for i, value in enumerate(table["split"].tolist()):
            if value and value.lower() not in SPLIT_ALIASES:
                raise DatakitError(f"{path}: line {i + 2}, column 'split': {value!r} is not train, val or test")
    dup = table["file"].duplicated(keep=False)
    if dup.any():
        conflicts = table[dup].groupby("file")["label"].nunique()
        bad = conflicts[conflicts > 1]
        if len(bad):
            name = bad.index[0]
            lines = [str(i + 2) for i in table.index[table["file"] == name]]
            raise DatakitError(f"{path}: file {name!r} has different labels on lines {', '.join(lines)}")
    return table


def _assign_csv_labels(files: list[ScannedFile], table: pd.DataFrame, csv_path: Path) -> list[dict[str, str]]:
    notes: list[dict[str, str]] = []
    by_path = {f.path: f for f in files}
    by_name: dict[str, list[ScannedFile]] = {}
    for f in files:
        by_name.setdefault(f.path.rsplit("/", 1)[-1], []).append(f)
    matched: set[str] = set()
    has_split = "split" in table.columns
    for line, row in enumerate(table.to_dict("records"), start=2):
        name = row["file"].replace("\\", "/")
        if not name:
            notes.append({"path": f"{csv_path.name}:{line}", "reason": "empty file name"})
            continue
        if name.startswith("/") or ".." in name.split("/"):
            notes.append({"path": name, "reason": f"{csv_path.name} line {line}: path leaves the source folder; refused"})
            continue
        target = by_path.get(name.lstrip("./"))
        if target is None:
            candidates = by_name.get(name.rsplit("/", 1)[-1], [])
            target = candidates[0] if len(candidates) == 1 and "/" not in name else None
        if target is None:
            notes.append({"path": name, "reason": f"listed in {csv_path.name} line {line} but not found in the source"})
            continue
        target.label = row["label"] or None
        if has_split and row["split"]:
            target.split = SPLIT_ALIASES[row["split"].lower()]
        matched.add(target.path)
    for f in files:
        if f.path not in matched:
            notes.append({"path": f.path, "reason": f"not listed in {csv_path.name}: no label"})
    return notes


def folder_categories(
    old: list[dict[str, Any]], retired: list[dict[str, Any]], labels: list[str], old_from_folders: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The categories of a folder ingest, the categories now retired, and those dropped by this ingest.

    A folder ingest's categories are the labels its images carry (class folders, a labels CSV):
    a deleted or renamed class folder leaves no empty category behind, which a report would count
    as a missing class and an export would write as one. Ids stay stable for everyone keyed by
    them: a kept name keeps its id, a name that comes back gets its old id again, and a new name
    gets an id no name had in this manifest (the retired are kept in the header for that).
    Categories a format declared (``old_from_folders`` False) are kept as they are.
    """
    used = set(labels)
    dropped = [dict(c) for c in old if old_from_folders and c["name"] not in used]
    categories = [dict(c) for c in old if c["name"] not in {d["name"] for d in dropped}]
    earlier = {c["name"]: dict(c) for c in [*retired, *dropped]}
    taken = {int(c["id"]) for c in categories}
    next_id = max((int(c["id"]) for c in [*old, *retired]), default=-1) + 1
    known = {c["name"] for c in categories}
    for name in labels:
        if name in known:
            continue
        back = earlier.pop(name, None)
        if back is not None and int(back["id"]) not in taken:
            categories.append(back)
        else:
            categories.append({"id": next_id, "name": name})
            next_id += 1
        taken.add(int(categories[-1]["id"]))
    categories.sort(key=lambda c: int(c["id"]))
    names = {c["name"] for c in categories}
    still_retired = sorted((c for c in earlier.values() if c["name"] not in names), key=lambda c: int(c["id"]))
    return categories, still_retired, dropped


# ---------------------------------------------------------------------------------------------
# what every ingest does


def broken_rows(images: pd.DataFrame) -> list[dict[str, str]]:
    """Path, status and reason of every image row whose status is not ok."""
    broken = images[images["status"] != "ok"]
    return [{"path": p, "status": s, "reason": r} for p, s, r in zip(broken["path"], broken["status"], broken["reason"])]


def check_strict(strict: bool, broken: list[dict[str, str]], skipped: list[dict[str, str]] | None = None) -> None:
    """--strict: any broken file (or skipped item of a format) fails the ingest before anything is written."""
    if not strict or not (broken or skipped):
        return
    if skipped is None:
        raise CheckFailed(f"{len(broken)} broken file(s), first: {broken[0]['path']} ({broken[0]['reason']}); "
                          "nothing written (--strict)")
    first = broken[0] if broken else skipped[0]
    raise CheckFailed(f"{len(broken)} broken file(s) and {len(skipped)} skipped item(s), first: "
                      f"{first['path']} ({first['reason']}); nothing written (--strict)")


# ---------------------------------------------------------------------------------------------
# the command


def ingest(
    src: str | os.PathLike[str],
    output: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    workers: int | None = None,
    verify: str = "structure",
    strict: bool = False,
    incremental: bool = True,
    allow_outside: bool | None = None,
    table_format: str = "parquet",
    show_progress: bool = True,
    on_file: Callable[[str], None] | None = None,
    format: str | None = None,
    on_invalid: str = "clip",
    max_pixels: int | None = None,
) -> IngestResult:
    """Scan ``src`` into the manifest at ``output``; see the module docstring for layouts.

    With ``format`` (coco, voc, yolo, labelme, imagefolder, masks), or when one is detected in
    ``src`` and no folder layout or labels CSV was asked for, the annotation format is read instead
    (``datakit.convert.ingest_format``); ``on_invalid`` (clip, skip, fail) applies to its objects.
    Images over ``max_pixels`` (default: Pillow's error threshold, about 179 megapixels) get
    status ``too_large`` and are never decoded.
    """
    if max_pixels is not None and max_pixels <= 0:
        raise DatakitError(f"--max-pixels must be a positive number of pixels, got {max_pixels}")
    check_output(src, output, allow_outside)
    if format is None and labels is None and layout == "auto":
        from datakit.formats import detect_format

        format = detect_format(src)
    if format is not None:
        return ingest_format(src, output, format=format, on_invalid=on_invalid, workers=workers, verify=verify,
                             strict=strict, incremental=incremental, table_format=table_format,
                             show_progress=show_progress, max_pixels=max_pixels, allow_outside=allow_outside)
    started = time.perf_counter()
    src_path = Path(src)
    if not src_path.is_dir():
        raise DatakitError(f"{src}: not a folder")
    if layout not in LAYOUTS:
        raise DatakitError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if verify not in imageinfo.VERIFY_MODES:
        raise DatakitError(f"unknown verify mode {verify!r}; choose one of: {', '.join(imageinfo.VERIFY_MODES)}")
    workers = workers or os.cpu_count() or 1
    labels_table = read_labels_csv(Path(labels)) if labels else None

    files, refused = scan_images(src_path, allow_outside=outside_allowed(allow_outside))
    if not files:
        raise DatakitError(_no_images_reason(src, refused))
    skipped = list(refused)
    if layout == "auto" and labels is None:  # read as plain images: say so if annotations lie there unread
        from datakit.formats.hints import unclaimed_annotations

        skipped += unclaimed_annotations(src_path)
    chosen = detect_layout(files, labels_table is not None) if layout == "auto" else layout
    kept_unlabeled: list[dict[str, str]] = []
    if chosen == "flat":
        if labels_table is None:
            raise DatakitError("layout 'flat' needs --labels FILE.csv (columns: file,label[,split])")
        skipped += _assign_csv_labels(files, labels_table, Path(labels))  # type: ignore[arg-type]
    else:
        kept_unlabeled = assign_folder_labels(files, chosen)

    out_location = resolve_location(output)
    old_images: pd.DataFrame | None = None
    old_categories: list[dict[str, Any]] = []
    retired: list[dict[str, Any]] = []
    old_from_folders = False
    reread = False
    if incremental and manifest_exists(out_location):
        old = load_manifest(out_location, allow_outside=allow_outside)
        old_source = old.root().resolve()
        if old_source != src_path.resolve():
            raise DatakitError(
                f"{out_location}: this manifest was made from {old_source}, not {src_path.resolve()}; "
                "choose another output or pass --no-incremental to replace it"
            )
        old_images = old.images
        old_categories = old.categories
        retired = list(old.extra.get(RETIRED_KEY, []))
        old_from_folders = old.source.get("layout") in LAYOUTS
        reread = _checks_changed(old, verify, max_pixels)
    comparison = compare_with_previous(files, old_images, reread=reread)
    reused, reused_paths = comparison.reused, comparison.reused_paths
    jobs = [(f.path, str(src_path / f.path), verify, max_pixels)
            for f in files if f.path not in reused_paths and not f.bad_name]
    named_badly = [f for f in files if f.bad_name and f.path not in reused_paths]
    meta = {f.path: f for f in files}

    chunks: list[pd.DataFrame] = [reused] if len(reused) else []
    rows: list[dict[str, Any]] = []
    for f in named_badly:  # never opened: the name cannot be stored as it is
        row = {name: None for name in IMAGE_COLUMNS}
        row.update(id=image_id(f.path), path=f.path, file_size=f.size, mtime_ns=f.mtime_ns, split=f.split,
                   status="bad_name", reason=BAD_NAME_REASON)
        rows.append(row)
    for rel, facts in _inspect_all(jobs, workers, show_progress):
        f = meta[rel]
        row = {name: None for name in IMAGE_COLUMNS}
        row.update(facts)
        row.update(
            id=comparison.previous_ids.get(rel) or image_id(rel),
            path=rel,
            file_size=facts.get("file_size", f.size),
            mtime_ns=f.mtime_ns,
            label=f.label,
            split=f.split,
        )
        rows.append(row)
        if on_file is not None:
            on_file(rel)
        if len(rows) >= _CHUNK_ROWS:
            chunks.append(_rows_to_frame(rows))
            rows = []
    if rows or not chunks:
        chunks.append(_rows_to_frame(rows))
    images = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    images = comparison.settle(images.sort_values("path", kind="stable").reset_index(drop=True))

    label_names = sorted(images["label"].dropna().unique().tolist())
    categories, retired, dropped = folder_categories(old_categories, retired, label_names, old_from_folders)
    broken_list = broken_rows(images)
    check_strict(strict, broken_list)

    manifest = Manifest(
        images=images,
        categories=categories,
        tasks=["classification"] if label_names else [],
        # relative, so a manifest and its images can move together
        image_root=os.path.relpath(src_path.resolve(), out_location.resolve()),
        source={"layout": chosen, "labels": Path(labels).name if labels else None, "verify": verify,
                "max_pixels": max_pixels},
        extra={RETIRED_KEY: retired} if retired else {},
    )
    save_manifest(manifest, out_location, table_format=table_format)
    ok = images[images["status"] == "ok"]
    return IngestResult(
        manifest_path=out_location,
        layout=chosen,
        total=len(images),
        status_counts={k: int(v) for k, v in images["status"].value_counts().sort_index().items()},
        label_counts={k: int(v) for k, v in ok["label"].fillna("(none)").value_counts().sort_index().items()},
        broken=broken_list,
        skipped=skipped,
        kept_unlabeled=kept_unlabeled,
        new=comparison.new,
        changed=comparison.changed,
        deleted=comparison.deleted,
        unchanged=comparison.unchanged,
        categories_dropped=dropped,
        seconds=time.perf_counter() - started,
    )


def _no_images_reason(src: str | os.PathLike[str], refused: list[dict[str, str]]) -> str:
    """Why a folder gave no image to read: none there, or every one refused (the first named)."""
    if not refused:
        return f"{src}: no image files found (looked for {', '.join(sorted(imageinfo.IMAGE_EXTENSIONS)[:9])}, ...)"
    first = refused[0]
    outside = sum(1 for entry in refused if entry["reason"].startswith(OUTSIDE_REASON))
    hint = f"; {outside} of them symlink(s) leaving the source (--allow-outside follows them)" if outside else ""
    return (f"{src}: no image file could be read: {len(refused)} entr(ies) refused, first: {first['path']} "
            f"({first['reason']}){hint}")


def _report_category_changes(old: list[dict[str, Any]], new: list[dict[str, Any]], report: Any) -> None:
    """A format's own category ids replace the manifest's on re-ingest (the file is the truth); say
    which names moved, so a model or export keyed by the old ids is not silently wrong."""
    before = {c["name"]: int(c["id"]) for c in old}
    for category in new:
        was = before.get(category["name"])
        if was is not None and was != int(category["id"]):
            report.remap(category["name"], was, int(category["id"]), "since the last ingest into this manifest")
    names_before = {i: n for n, i in before.items()}
    for category in new:
        taken = names_before.get(int(category["id"]))
        if category["name"] not in before and taken is not None:
            report.remap(category["name"], None, int(category["id"]), f"a new name; id {category['id']} named "
                                                                        f"{taken!r} in the last ingest into this manifest")


def _checks_changed(old: Any, verify: str, max_pixels: int | None) -> bool:
    """Whether the old manifest's files were checked otherwise (``--verify``, ``--max-pixels``):
    then its rows are not reused as they stand (a re-ingest with ``--verify decode`` decodes every
    file, a lower pixel limit refuses what it now exceeds). A manifest from before these were
    recorded was checked with the defaults."""
    source = old.source or {}
    return source.get("verify", "structure") != verify or source.get("max_pixels") != max_pixels


def _refuse_links_leaving(src: Path) -> None:
    """An annotation file or folder under SRC that a symlink takes outside it is refused before
    anything is read (images linked outside become rows that are never opened)."""
    from datakit.scan import links_leaving

    found, count = links_leaving(src)
    if count:
        shown = "; ".join(f"{rel} -> {target}" for rel, target in found)
        raise DatakitError(f"{src}: {count} symlink(s) lead outside the data set ({shown}{'; ...' if count > len(found) else ''}); "
                           "an annotation reader would read them: refused (--allow-outside follows them)")


def ingest_format(
    src: str | os.PathLike[str],
    output: str | os.PathLike[str],
    format: str | None = None,
    on_invalid: str = "clip",
    image_dir: str | None = None,
    workers: int | None = None,
    verify: str = "structure",
    strict: bool = False,
    incremental: bool = True,
    table_format: str = "parquet",
    show_progress: bool = True,
    max_pixels: int | None = None,
    allow_outside: bool | None = None,
) -> IngestResult:
    """Read an annotation format into the manifest at ``output`` (``datakit ingest --format``).

    Into an existing manifest of the same images (``incremental``), image files whose path, size
    and mtime are unchanged are not read again and keep their split (unless the format's own split
    files give one) and any column a user added; annotations and categories always come from the
    annotation files. ``incremental=False`` replaces the manifest with a fresh read.
    """
    from datakit.formats import read_source
    from datakit.formats.base import ReadOptions

    started = time.perf_counter()
    if verify not in imageinfo.VERIFY_MODES:
        raise DatakitError(f"unknown verify mode {verify!r}; choose one of: {', '.join(imageinfo.VERIFY_MODES)}")
    check_output(src, output, allow_outside)
    if Path(src).is_dir() and not outside_allowed(allow_outside):
        _refuse_links_leaving(Path(src))
    out_location = resolve_location(output)
    old = load_manifest(out_location, allow_outside=True) if incremental and manifest_exists(out_location) else None
    reread = old is not None and _checks_changed(old, verify, max_pixels)
    options = ReadOptions(on_invalid=on_invalid, image_dir=image_dir, workers=workers, verify=verify,
                          show_progress=show_progress, max_pixels=max_pixels, allow_outside=allow_outside,
                          previous_images=None if old is None or reread else old.images)
    result = read_source(src, format, options)
    manifest = result.manifest
    manifest.source = {**manifest.source, "verify": verify, "max_pixels": max_pixels}
    new_root = Path(manifest.image_root).resolve()
    check_image_root(os.path.relpath(new_root, out_location.resolve()), str(output), allow_outside)
    images = manifest.images
    comparison = compare_with_previous([], None)
    dropped: list[dict[str, Any]] = []
    if old is not None:
        # the same rule as the folder ingest: a manifest is updated only by one of the same images
        old_root = old.root().resolve()
        if old_root != new_root:
            raise DatakitError(f"{out_location}: this manifest was made from {old_root}, not {new_root}; "
                               "choose another output or pass --no-incremental to replace it")
        _report_category_changes(old.categories, manifest.categories, result.report)
        declared = set(manifest.category_names)
        dropped = [dict(c) for c in old.categories if c["name"] not in declared]
        # counted by the rule the read reused rows by (a missing file has no size: -1 on both sides),
        # then re-read files of unchanged content count as unchanged and keep their split
        read = [ScannedFile(p, s, m) for p, s, m in zip(images["path"].tolist(), images["file_size"].fillna(-1).tolist(),
                                                        images["mtime_ns"].fillna(-1).tolist())]
        comparison = compare_with_previous(read, old.images, reread=reread)
        manifest.images = images = comparison.settle(images)
    broken_list = broken_rows(images)
    check_strict(strict, broken_list, result.report.skipped)
    out_location.mkdir(parents=True, exist_ok=True)
    # relative, so a manifest and its images can move together
    manifest.image_root = Path(os.path.relpath(new_root, out_location.resolve())).as_posix()
    save_manifest(manifest, out_location, table_format=table_format)
    ok = images[images["status"] == "ok"]
    report = result.report
    return IngestResult(
        manifest_path=out_location,
        layout=result.format,
        total=len(images),
        status_counts={k: int(v) for k, v in images["status"].value_counts().sort_index().items()},
        label_counts={k: int(v) for k, v in ok["label"].dropna().value_counts().sort_index().items()},
        broken=broken_list,
        skipped=report.skipped,
        new=comparison.new,
        changed=comparison.changed,
        deleted=comparison.deleted,
        unchanged=comparison.unchanged,
        categories_dropped=dropped,
        seconds=time.perf_counter() - started,
        format=result.format,
        annotations=len(manifest.annotations),
        annotation_counts={k: int(v) for k, v in manifest.annotations["category"].value_counts().sort_index().items()},
        report=report,
    )
