"""Per-image pixel statistics and perceptual hashes: decoded in parallel, cached by content hash.

The cache is an optional table beside the manifest (``pixel_stats.parquet``) keyed by the file's
SHA-256 and the statistics version, so an edited image is never served from an old entry and a
second run decodes nothing. When the manifest's folder is read-only the table lives in the user's
cache folder (``$XDG_CACHE_HOME/datakit`` or ``~/.cache/datakit``), named after the manifest path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datakit.atomic import write_atomic
from datakit.hashing import HASH_SIDE, THUMB_COLUMNS, colour_thumbnail, perceptual_hash
from datakit.parallel import imap_progress

STATS_VERSION = 3
CACHE_NAME = "pixel_stats.parquet"
WORK_SIDE = 256  # statistics are measured on the image scaled to fit this side: comparable across sizes
STAT_COLUMNS = ("brightness", "contrast", "saturation", "sharpness", "entropy", "colour_spread")
PHASH_COLUMNS = tuple(f"ph{i}" for i in range(HASH_SIDE * HASH_SIDE))
COLUMNS = ("sha256", "version", *STAT_COLUMNS, "grayscale", "error", *PHASH_COLUMNS, *THUMB_COLUMNS)


def measure(path: str) -> dict[str, Any]:
    """Statistics of one image file (runs in worker processes: plain values in and out)."""
    import cv2

    cv2.setNumThreads(1)
    image = cv2.imread(path, cv2.IMREAD_COLOR)  # applies EXIF orientation: stats of the picture as displayed
    if image is None:
        return {"error": "OpenCV could not decode the file"}
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
    row: dict[str, Any] = {
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "saturation": float(hsv[:, :, 1].mean()),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),
        "entropy": float(-(p * np.log2(p)).sum()),
        "colour_spread": spread,
        "grayscale": bool(spread < 1.0),
        "error": None,
    }
    row.update(zip(PHASH_COLUMNS, perceptual_hash(gray).tolist()))
    row.update(zip(THUMB_COLUMNS, colour_thumbnail(image).tolist()))
    return row


def _job(item: tuple[str, str]) -> tuple[str, dict[str, Any]]:
    key, path = item
    try:
        return key, measure(path)
    except Exception as exc:  # noqa: BLE001 - one bad file must not end a 100k-image run
        return key, {"error": f"{type(exc).__name__}: {exc}"}


def _measure_all(items: list[tuple[str, str]], workers: int, show_progress: bool) -> dict[str, dict[str, Any]]:
    return dict(imap_progress(_job, items, workers, "Pixel statistics", show_progress, serial_below=32, ordered=False,
                             clean_start=True))


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
        table = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - a damaged or foreign cache is only a cache: start again
        return pd.DataFrame(columns=list(COLUMNS))
    if not set(COLUMNS) <= set(table.columns):
        return pd.DataFrame(columns=list(COLUMNS))
    table = table[table["version"] == STATS_VERSION]
    return table.drop_duplicates("sha256", keep="last")


def _write_cache(path: Path, table: pd.DataFrame) -> None:
    try:
        write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))
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
    paths = rows.loc[todo.index, "path"].astype(str)
    items = [(str(k), str(manifest.image_path(p))) for k, p in zip(todo.tolist(), paths.tolist())]
    workers = ctx.workers or os.cpu_count() or 1
    fresh = _measure_all(items, workers, ctx.show_progress)
    if fresh:
        new = pd.DataFrame.from_dict(fresh, orient="index")
        for column in COLUMNS[2:]:
            if column not in new.columns:
                new[column] = np.nan
        new["version"] = STATS_VERSION
        new.index.name = "sha256"
        new = new[list(COLUMNS[1:])]
        new["grayscale"] = new["grayscale"].astype("boolean")
        new["error"] = new["error"].astype("string")
        table = pd.concat([cached, new]) if len(cached) else new
        if location is not None:
            keep = table[~table.index.str.startswith("path:")]
            _write_cache(location, keep.reset_index())
    else:
        table = cached
    out = table.reindex(keys.to_numpy())
    out.index = rows.index
    out[list(PHASH_COLUMNS)] = out[list(PHASH_COLUMNS)].astype(np.float32).fillna(0.0)
    out[list(THUMB_COLUMNS)] = out[list(THUMB_COLUMNS)].astype(np.float32).fillna(0.0)
    out.attrs["decoded"] = len(items)
    out.attrs["cache"] = str(location) if location is not None else None
    return out
