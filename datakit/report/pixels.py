"""Per-image pixel statistics and perceptual hashes: decoded in parallel, cached by content hash.

The cache is an optional table beside the manifest (``pixel_stats.parquet``) keyed by the file's
SHA-256 and the statistics version, so an edited image is never served from an old entry and a
second run decodes nothing. When the manifest's folder is read-only the table lives in the user's
cache folder (``$XDG_CACHE_HOME/datakit`` or ``~/.cache/datakit``), named after the manifest path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from datakit.atomic import write_atomic
from datakit.hashing import HASH_SIDE, THUMB_COLUMNS, colour_thumbnail, perceptual_hash
from datakit.parallel import imap_progress
from datakit.parquet_files import read_parquet, write_parquet
from datakit.regular_files import NotRegularFile, read_regular_file

STATS_VERSION = 3
CACHE_NAME = "pixel_stats.parquet"
WORK_SIDE = 256  # statistics are measured on the image scaled to fit this side: comparable across sizes
STAT_COLUMNS = ("brightness", "contrast", "saturation", "sharpness", "entropy", "colour_spread")
PHASH_COLUMNS = tuple(f"ph{i}" for i in range(HASH_SIDE * HASH_SIDE))
COLUMNS = ("sha256", "version", *STAT_COLUMNS, "grayscale", "error", *PHASH_COLUMNS, *THUMB_COLUMNS)


def measure(path: str) -> dict[str, Any]:
    """Statistics of one image file as a dict (``sha256``/``version`` aside, the cache's columns)."""
    values, phash, thumb, error = _measure_compact(path)
    if error is not None:
        return {"error": error}
    row: dict[str, Any] = dict(zip(STAT_COLUMNS, values.tolist()))
    row["grayscale"] = bool(values[STAT_COLUMNS.index("colour_spread")] < 1.0)
    row["error"] = None
    row.update(zip(PHASH_COLUMNS, phash.tolist()))
    row.update(zip(THUMB_COLUMNS, thumb.tolist()))
    return row


_NO_STATS = np.full(len(STAT_COLUMNS), np.nan, np.float32)
_NO_HASH = np.zeros(HASH_SIDE * HASH_SIDE, np.float32)
_NO_THUMB = np.zeros(len(THUMB_COLUMNS), np.uint8)


def _measure_compact(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """(statistics float32, perceptual hash float32, colour thumbnail uint8, error or None) of one file.

    Small arrays, not dicts of Python floats: 100k results sent back from workers and held by the
    parent cost ~100 MB this way, against gigabytes as per-image dicts of 225 boxed values.
    """
    import cv2

    cv2.setNumThreads(1)
    try:
        data = np.frombuffer(read_regular_file(path), dtype=np.uint8)
    except NotRegularFile as exc:
        return _NO_STATS, _NO_HASH, _NO_THUMB, exc.strerror or str(exc)
    except OSError as exc:
        return _NO_STATS, _NO_HASH, _NO_THUMB, f"cannot read the file ({exc.strerror or exc})"
    with quiet_opencv():
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation: stats of the picture as displayed
    if image is None:
        return _NO_STATS, _NO_HASH, _NO_THUMB, "OpenCV could not decode the file"
    h, w = image.shape[:2]
    scale = WORK_SIDE / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    b, g, r = (image[:, :, i].astype(np.int16) for i in range(3))
    spread = float((np.abs(r - g) + np.abs(g - b) + np.abs(b - r)).mean() / 3)
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    values = np.array([gray.mean(), gray.std(), hsv[:, :, 1].mean(), cv2.Laplacian(gray, cv2.CV_64F).var(),
                       -(p * np.log2(p)).sum(), spread], np.float32)  # in STAT_COLUMNS order
    return values, perceptual_hash(gray), colour_thumbnail(image).astype(np.uint8), None


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own log held at errors for the block: a file that cannot be decoded is reported
    once, as an image issue, not also as a raw "[ WARN ... can't open/read file" line on stderr."""
    import cv2

    # OpenCV 5 has only cv2.utils.logging; 4.x has it too, and older builds only cv2.setLogLevel
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    get_level = getattr(logging, "getLogLevel", None) or getattr(cv2, "getLogLevel", None)
    set_level = getattr(logging, "setLogLevel", None) or getattr(cv2, "setLogLevel", None)
    if get_level is None or set_level is None:
        yield
        return
    before = get_level()
    set_level(getattr(logging, "LOG_LEVEL_ERROR", 2))
    try:
        yield
    finally:
        set_level(before)


def _job(item: tuple[int, str]) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray, str | None]]:
    index, path = item
    try:
        return index, _measure_compact(path)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end a 100k-image run
        return index, (_NO_STATS, _NO_HASH, _NO_THUMB, f"{type(exc).__name__}: {exc}")


def _measure_all(paths: list[str], workers: int, show_progress: bool) -> pd.DataFrame:
    """Fresh statistics of ``paths`` as one frame (cache columns after ``sha256``), filled in place."""
    n = len(paths)
    values = np.full((n, len(STAT_COLUMNS)), np.nan, np.float32)
    phash = np.zeros((n, len(PHASH_COLUMNS)), np.float32)
    thumbs = np.zeros((n, len(THUMB_COLUMNS)), np.uint8)
    errors: dict[int, str] = {}
    for i, (v, ph, th, error) in imap_progress(_job, list(enumerate(paths)), workers, "Pixel statistics",
                                               show_progress, serial_below=32, ordered=False, clean_start=True):
        values[i], phash[i], thumbs[i] = v, ph, th
        if error is not None:
            errors[i] = error
    return _frame(values, phash, thumbs, errors)


def _frame(values: np.ndarray, phash: np.ndarray, thumbs: np.ndarray, errors: dict[int, str]) -> pd.DataFrame:
    n = len(values)
    error = pd.Series(pd.NA, index=range(n), dtype="string")
    if errors:
        error.iloc[list(errors)] = list(errors.values())
    spread = values[:, STAT_COLUMNS.index("colour_spread")]
    grayscale = pd.array(spread < 1.0, dtype="boolean")
    grayscale[np.isnan(spread)] = pd.NA
    parts = [pd.DataFrame({"version": np.full(n, STATS_VERSION, np.int64)}),
             pd.DataFrame(values, columns=list(STAT_COLUMNS)),
             pd.DataFrame({"grayscale": grayscale, "error": error}),
             pd.DataFrame(phash, columns=list(PHASH_COLUMNS)),
             pd.DataFrame(thumbs, columns=list(THUMB_COLUMNS))]
    return pd.concat(parts, axis=1)


def cache_path(manifest_dir: Path) -> Path:
    """Beside the manifest when that folder is writable, else in the user's cache folder."""
    manifest_dir = Path(manifest_dir).resolve()
    if manifest_dir.is_dir() and os.access(manifest_dir, os.W_OK):
        return manifest_dir / CACHE_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "datakit" / "pixel_stats"
    digest = hashlib.sha256(str(manifest_dir).encode("utf-8")).hexdigest()[:16]
    return base / f"{manifest_dir.name}-{digest}.parquet"


def _read_cache(path: Path) -> pd.DataFrame:
    try:
        table = read_parquet(path)
    except Exception:  # noqa: BLE001 - a damaged or foreign cache is only a cache: start again
        return pd.DataFrame(columns=list(COLUMNS))
    if not set(COLUMNS) <= set(table.columns):
        return pd.DataFrame(columns=list(COLUMNS))
    table = table[table["version"] == STATS_VERSION]
    return table.drop_duplicates("sha256", keep="last")


def _write_cache(path: Path, table: pd.DataFrame) -> None:
    try:
        write_atomic(path, lambda tmp: write_parquet(table, tmp))
    except OSError:
        pass  # the cache is optional: a full disk or read-only home only costs the next run time


def image_statistics(ctx: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Statistics for ``rows`` (ok image rows), indexed like them; cached unless ``ctx.cache`` is False."""
    manifest = ctx.manifest
    keys = rows["sha256"].astype("string")
    # rows without a content hash (hand-made manifests) are keyed by path and never cached
    keys = keys.where(keys.notna(), "path:" + rows["path"].astype(str))
    location = cache_path(manifest.location) if ctx.cache and manifest.location is not None else None
    cached = _read_cache(location) if location is not None and location.exists() else pd.DataFrame(columns=list(COLUMNS))
    cached = cached.set_index("sha256")
    unique = keys.drop_duplicates()
    todo = unique[~unique.isin(cached.index)]
    paths = [str(manifest.image_path(p)) for p in rows.loc[todo.index, "path"].astype(str).tolist()]
    workers = ctx.workers or os.cpu_count() or 1
    if paths:
        new = _measure_all(paths, workers, ctx.show_progress)
        new.index = pd.Index(todo.astype(str).tolist(), name="sha256")
        table = pd.concat([cached, new]) if len(cached) else new
        if location is not None:
            keep = table[~table.index.str.startswith("path:")]
            _write_cache(location, keep.reset_index())
    else:
        table = cached
    out = table.reindex(keys.to_numpy())
    out.index = rows.index
    # compact dtypes whatever the cache held (an older cache stored thumbnails as int64)
    out = out.astype({**{c: np.float32 for c in (*STAT_COLUMNS, *PHASH_COLUMNS)},
                      **{c: np.uint8 for c in THUMB_COLUMNS}})
    out.attrs["decoded"] = len(paths)
    out.attrs["cache"] = str(location) if location is not None else None
    return out
