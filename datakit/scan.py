"""Finding image files and reading their facts, in parallel: below both ``ingest`` and the formats.

``scan_images`` walks a folder (symlinks that leave it, loops, FIFOs and devices are refused with a
reason); ``inspect_paths`` reads hash, size, displayed width/height and status of named files
through a process pool whose workers ignore Ctrl-C (the parent handles it and writes nothing);
``detect_layout`` and ``assign_folder_labels`` read class and split folders (ingest and the
imagefolder format share them).
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from datakit import imageinfo
from datakit.regular_files import special_file_kind
from datakit.parallel import imap_progress
from datakit.manifest import IMAGE_COLUMNS

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
_CHUNK_ROWS = 5000


@dataclass
class ScannedFile:
    path: str  # relative, posix
    size: int
    mtime_ns: int
    label: str | None = None
    split: str | None = None
    # the name on disk is not valid UTF-8: ``path`` holds it percent-encoded (see escape_name)
    bad_name: bool = False
BAD_NAME_REASON = ("file name is not valid UTF-8; the path column holds its bytes percent-encoded "
                   "(urllib.parse.unquote_to_bytes gives them back): rename the file to use it")


def escape_name(relative_path: str) -> str:
    """A path with undecodable bytes (Python's surrogate escapes) as text, reversibly.

    Every byte that is not printable ASCII, and ``%`` itself, becomes ``%XX``, so
    ``urllib.parse.unquote_to_bytes(escaped)`` returns exactly the bytes of the name on disk.
    """
    from urllib.parse import quote

    raw = relative_path.encode("utf-8", "surrogateescape")
    return quote(raw, safe="/ !\"#$&'()*+,-.:;<=>?@[]^_`{|}~")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def image_id(relative_path: str) -> str:
    """Stable id from the path inside the source, so a re-ingest gives every file the same id."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def outside_target(path: str | os.PathLike[str], root: Path) -> Path | None:
    """Where ``path`` really is when symlinks (the file's or a folder's on the way) take it outside
    ``root`` (already resolved), else None: such a file is refused, never opened, unless the user
    passes --allow-outside."""
    target = Path(os.path.realpath(path))
    return None if _inside(target, root) else target


OUTSIDE_REASON = "symlink resolves outside the source"


def outside_reason(target: Path) -> str:
    return f"{OUTSIDE_REASON} ({target})"


def links_leaving(src: Path, limit: int = 3) -> tuple[list[tuple[str, Path]], int]:
    """Symlinks under ``src`` (files other than images, and folders) that resolve outside it: the
    first ``limit`` (path relative to src, where it leads) and how many in all.

    Annotation readers open the files they find (JSON, XML, label txt, mask PNGs) and follow folder
    links, so a data set could make them read any file on the machine into its manifest. Image
    files are left to the per-image check (a row with status unreadable, never opened)."""
    root = src.resolve()
    found: list[tuple[str, Path]] = []
    count = 0
    for directory, folders, files in os.walk(src):  # does not descend into folder links
        here = Path(directory)
        # images aside: `name in files` per entry made this quadratic in a flat folder of 100k images
        candidates = [*folders, *(name for name in files
                                  if os.path.splitext(name)[1].lower() not in imageinfo.IMAGE_EXTENSIONS)]
        for name in candidates:
            path = here / name
            if not path.is_symlink():
                continue
            target = outside_target(path, root)
            if target is not None:
                count += 1
                if len(found) < limit:
                    found.append((path.relative_to(src).as_posix(), target))
    return found, count


def scan_images(src: Path, allow_outside: bool = False) -> tuple[list[ScannedFile], list[dict[str, str]]]:
    """Every file with an image extension under src, and the entries refused (with reasons).

    Nothing but regular files is ever opened: FIFOs, sockets and devices are reported and
    skipped (reading a FIFO blocks forever). Folder symlinks are not followed (their files are
    read where they are, or are outside the source) and say so, loops included. A name that is
    not valid UTF-8 is kept as a ``bad_name`` row, percent-encoded.
    """
    root = src.resolve()
    found: list[ScannedFile] = []
    refused: list[dict[str, str]] = []

    def walk(directory: Path, rel_parts: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except PermissionError as exc:
            refused.append({"path": "/".join(rel_parts) or ".", "reason": f"cannot list folder: {exc.strerror}"})
            return
        for entry in entries:
            if entry.name.startswith("."):
                # metadata (macOS ._name, editors' backups), never data; an image name says so aloud
                if os.path.splitext(entry.name)[1].lower() in imageinfo.IMAGE_EXTENSIONS:
                    rel = "/".join(rel_parts + (entry.name,))
                    refused.append({"path": rel if _is_utf8(rel) else escape_name(rel),
                                    "reason": "hidden file (its name starts with '.'): not read"})
                continue
            rel = "/".join(rel_parts + (entry.name,))
            shown = rel if _is_utf8(rel) else escape_name(rel)
            if entry.is_symlink():
                try:
                    os.stat(entry.path)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        refused.append({"path": shown, "reason": "symlink loop (it points back to itself): not followed"})
                    else:
                        refused.append({"path": shown, "reason": f"broken symlink ({exc.strerror}): skipped"})
                    continue
                target = Path(os.path.realpath(entry.path))
                if not allow_outside and outside_target(target, root):
                    refused.append({"path": shown, "reason": outside_reason(target)})
                    continue
                if target.is_dir():
                    # following a folder link risks loops; inside the source its files are read anyway
                    loop = _inside(Path(os.path.realpath(directory)), target)
                    reason = ("symlink loop (it points to a folder that contains it): not followed" if loop else
                              "symlink to a folder: not followed (its files are read where they are)"
                              if _inside(target, root) else "symlink to a folder outside the source: not followed")
                    refused.append({"path": shown, "reason": reason})
                    continue
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), rel_parts + (entry.name,))
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                refused.append({"path": shown, "reason": f"cannot stat: {exc.strerror}"})
                continue
            kind = special_file_kind(st.st_mode)
            if kind:
                refused.append({"path": shown, "reason": f"not a regular file ({kind}): skipped, never opened"})
                continue
            if os.path.splitext(entry.name)[1].lower() not in imageinfo.IMAGE_EXTENSIONS:
                continue
            found.append(ScannedFile(shown, st.st_size, st.st_mtime_ns, bad_name=shown != rel))

    walk(root, ())
    return found, refused


# what a source declares about an image, the truth even when empty; the other columns a re-read
# leaves empty (split, lineage, a user's own) are what datakit or the user set on the row
SOURCE_COLUMNS = ("label", "semantic_mask", "source_id")


@dataclass
class Comparison:
    """A scan (or a format's image list) against the rows of the manifest it re-ingests into."""

    # old rows of unchanged files (same path, size and mtime): every column kept, extra ones
    # (a user's ``group``) and lineage included, so they are not read again
    reused: pd.DataFrame
    # changed files keep their old ids
    previous_ids: dict[str, str]
    new: list[str]
    changed: list[str]
    deleted: list[str]
    # old rows of the changed files, indexed by path (``settle`` compares their content)
    changed_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    unchanged: int = 0

    @property
    def reused_paths(self) -> set[str]:
        return set(self.reused["path"].tolist())

    def settle(self, images: pd.DataFrame) -> pd.DataFrame:
        """``images`` with the re-read files whose content hash is the old one (a copy, a checkout or
        `touch` moved only the mtime) treated as unchanged: they keep what the old row had and the
        re-read row lacks (the split, unless the source gives one; lineage; a user's columns) and are
        counted unchanged, not changed."""
        if not self.changed:
            return images
        old = self.changed_rows
        at = images.index[images["path"].isin(old.index).to_numpy()]
        before = old.loc[images.loc[at, "path"]]
        fresh_hash = images.loc[at, "sha256"].astype("string").to_numpy(dtype=object, na_value=None)
        old_hash = before["sha256"].astype("string").to_numpy(dtype=object, na_value=None)
        same = np.array([h is not None and h == o for h, o in zip(fresh_hash, old_hash)], dtype=bool)
        if not same.any():
            return images
        rows, before = at[same], before[same]
        images = images.copy()
        for column in before.columns:
            if column in SOURCE_COLUMNS:
                continue
            kept = pd.Series(before[column].to_numpy(), index=rows, dtype=before[column].dtype)
            if column not in images.columns:
                images[column] = pd.Series(pd.NA, index=images.index, dtype=before[column].dtype)
            images.loc[rows, column] = images.loc[rows, column].fillna(kept)
        unchanged = set(images.loc[rows, "path"].tolist())
        self.changed = [p for p in self.changed if p not in unchanged]
        self.unchanged += len(unchanged)
        return images


def compare_with_previous(files: list[ScannedFile], old_images: pd.DataFrame | None, reread: bool = False) -> Comparison:
    """Split the files against the previous manifest's image rows, vectorized (it runs on 100k+ rows).

    A file is unchanged when its path, size and mtime are the old row's: that row is reused with
    its label refreshed from the file's and its split kept unless the file gives one (a split
    folder, a format's split file wins over the one `datakit split` wrote). The others are read
    again; ``settle`` then finds those whose content did not change. With no previous rows every
    file is new, and none is listed as new (there is nothing to be new against). ``reread``: no
    row is reused (the files are checked otherwise than the old rows were), yet a file whose
    content did not change still keeps its split and counts unchanged.
    """
    scan = pd.DataFrame({
        "path": [f.path for f in files],
        "size": [f.size for f in files],
        "mtime": [f.mtime_ns for f in files],
        "label": pd.array([f.label for f in files], dtype="string"),
        "split": pd.array([f.split for f in files], dtype="string"),
    })
    if old_images is None:
        empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in IMAGE_COLUMNS.items()})
        return Comparison(empty, {}, [], [], [])
    previous = old_images.set_index("path")
    aligned = previous.reindex(scan["path"])
    known = scan["path"].isin(previous.index).to_numpy()
    same = (
        known & (not reread)
        & (aligned["file_size"].fillna(-1).astype("int64").to_numpy() == scan["size"].to_numpy())
        & (aligned["mtime_ns"].fillna(-1).astype("int64").to_numpy() == scan["mtime"].to_numpy())
    )
    reused = aligned[same].copy()
    reused["label"] = scan["label"][same].to_numpy()
    reused["split"] = pd.Series(scan["split"][same].to_numpy(), index=reused.index, dtype="string").fillna(
        reused["split"].astype("string"))
    reused = reused.reset_index()[list(IMAGE_COLUMNS) + [c for c in reused.columns if c not in IMAGE_COLUMNS]]
    changed = known & ~same
    changed_paths = scan["path"][changed].tolist()
    previous_ids = dict(zip(changed_paths, aligned["id"][changed].tolist()))
    new_paths = scan["path"][~known].tolist()
    deleted = sorted(set(previous.index) - set(scan["path"]))
    return Comparison(reused, previous_ids, new_paths, changed_paths, deleted, changed_rows=aligned[changed],
                      unchanged=len(reused))


def detect_layout(files: list[ScannedFile], has_labels_csv: bool) -> str:
    if has_labels_csv:
        return "flat"
    tops = {f.path.split("/")[0].lower() for f in files if "/" in f.path}
    if tops and tops <= set(SPLIT_ALIASES):
        return "splits"
    if any("/" in f.path for f in files):
        return "classes"
    return "unlabeled"


def assign_folder_labels(files: list[ScannedFile], layout: str) -> list[dict[str, str]]:
    notes: list[dict[str, str]] = []
    for f in files:
        parts = f.path.split("/")
        if layout == "classes":
            f.label = parts[0] if len(parts) > 1 and not f.bad_name else None
            if f.label is None and not f.bad_name:
                notes.append({"path": f.path, "reason": "at the top level of a class-folder layout: kept without a label"})
        elif layout == "splits":
            split = SPLIT_ALIASES.get(parts[0].lower()) if len(parts) > 1 else None
            if split is None:
                notes.append({"path": f.path, "reason": "not inside a train/val/test folder: kept without a split"})
            f.split = split
            f.label = parts[1] if len(parts) > 2 and not f.bad_name else None
    return notes


def _inspect_job(job: tuple[str, str, str, int | None]) -> tuple[str, dict[str, Any]]:
    rel, absolute, verify, max_pixels = job
    return rel, imageinfo.inspect_file(absolute, verify, max_pixels)


def _inspect_all(
    jobs: list[tuple[str, str, str, int | None]], workers: int, show_progress: bool
) -> Iterable[tuple[str, dict[str, Any]]]:
    return imap_progress(_inspect_job, jobs, workers, "Reading images", show_progress)


def _rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(IMAGE_COLUMNS))
    for name, dtype in IMAGE_COLUMNS.items():
        frame[name] = frame[name].astype(dtype)
    return frame


def inspect_paths(
    root: str | os.PathLike[str],
    relative_paths: list[str],
    workers: int | None = None,
    verify: str = "structure",
    show_progress: bool = True,
    max_pixels: int | None = None,
    allow_outside: bool = False,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Image rows (every IMAGE_COLUMNS column) for files named relative to ``root``.

    For format readers: the annotation file names the images, this fills in hash, size,
    displayed width/height, status and reason, in parallel. A file that does not exist gets
    status ``missing``; one that symlinks resolve outside ``root`` gets status ``unreadable`` and
    is never opened, as the folder scan refuses it (unless ``allow_outside``). Label and split are
    left empty for the caller to set (but see ``previous``).

    ``previous`` (the image rows of the manifest being re-ingested) makes it incremental as the
    folder ingest is (``compare_with_previous``): an unchanged file's old row is reused, not read,
    with its split and extra columns; a changed file keeps its old id.
    """
    root_path = Path(root)
    resolved_root = root_path.resolve()
    rows: list[dict[str, Any]] = []
    present: list[ScannedFile] = []
    for rel in relative_paths:
        absolute = root_path / rel
        outside = None if allow_outside else outside_target(absolute, resolved_root)
        if not absolute.exists():
            status, reason = "missing", "file not found under the image root"
        elif outside:
            status, reason = "unreadable", f"{outside_reason(outside)}: not opened (--allow-outside follows it)"
        else:  # a FIFO or device is reported by inspect_file without being read
            st = absolute.stat() if previous is not None else None
            present.append(ScannedFile(rel, st.st_size if st else -1, st.st_mtime_ns if st else -1))
            continue
        row = {name: None for name in IMAGE_COLUMNS}
        row.update(id=image_id(rel), path=rel, status=status, reason=reason)
        rows.append(row)
    comparison = compare_with_previous(present, previous)
    reused_paths = comparison.reused_paths
    jobs = [(f.path, str(root_path / f.path), verify, max_pixels) for f in present if f.path not in reused_paths]
    for rel, facts in _inspect_all(jobs, workers or os.cpu_count() or 1, show_progress):
        row = {name: None for name in IMAGE_COLUMNS}
        row.update(facts)
        row.update(id=comparison.previous_ids.get(rel) or image_id(rel), path=rel,
                   mtime_ns=(root_path / rel).stat().st_mtime_ns)
        rows.append(row)
    order = {rel: i for i, rel in enumerate(relative_paths)}
    frame = _rows_to_frame(rows)
    if len(comparison.reused):
        frame = pd.concat([comparison.reused, frame], ignore_index=True) if rows else comparison.reused
    position = frame["path"].map(order).to_numpy()
    return frame.iloc[position.argsort(kind="stable")].reset_index(drop=True)
