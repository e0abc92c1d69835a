"""Semantic mask PNGs in the report: how much of each image is labelled, and each class's share of pixels.

Each image's class map (the manifest's ``semantic_mask`` column) is read in worker processes and
reduced to a pixel count per value, so the parent holds one small count vector per image, never
the masks. Values follow the manifest's categories; 0 is background unless a category has id 0,
and 255 is ignore (as the mask format and the segmentation metrics read them). ``--sample N``
reads the masks of the same sampled images as the pixel statistics.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from datakit import geometry
from datakit.parallel import imap_progress

IGNORE = geometry.IGNORE
MAX_UNREADABLE = 20


def _count(path: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(values, pixel counts) of one class map, or an error."""
    from datakit.errors import DatakitError
    from datakit.geometry import read_label_png

    try:
        mask = read_label_png(path)
    except DatakitError as exc:
        return np.empty(0, np.int64), np.empty(0, np.int64), str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad mask must not end the report
        return np.empty(0, np.int64), np.empty(0, np.int64), f"{path}: {type(exc).__name__}: {exc}"
    counts = np.bincount(mask.ravel().astype(np.int64))
    values = np.flatnonzero(counts)
    return values, counts[values], None


def _job(item: tuple[int, str]) -> tuple[int, tuple[np.ndarray, np.ndarray, str | None]]:
    index, path = item
    return index, _count(path)


def semantic_statistics(ctx: Any) -> dict[str, Any] | None:
    """Coverage and per-class pixel shares of the semantic masks of ``ctx.pixel_rows()``; None without masks."""
    from datakit.report.base import summary

    rows = ctx.pixel_rows()
    if "semantic_mask" not in rows.columns or not rows["semantic_mask"].notna().any():
        return None
    rows = rows[rows["semantic_mask"].notna()]
    manifest = ctx.manifest
    cats = sorted(manifest.categories, key=lambda c: int(c["id"]))
    names = {int(c["id"]): str(c["name"]) for c in cats}
    background = None if 0 in names else 0
    items = [(i, str(manifest.image_path(p))) for i, p in enumerate(rows["semantic_mask"].astype(str).tolist())]
    workers = ctx.workers or os.cpu_count() or 1
    results = imap_progress(_job, items, workers, "Semantic masks", ctx.show_progress, serial_below=64,
                            ordered=False)
    # one sparse (image, value, pixels) triple per value present: a few per image
    image_idx, values, pixels, errors = [], [], [], []
    for i, (v, c, error) in results:
        if error is not None:
            errors.append((i, error))
            continue
        image_idx.append(np.full(len(v), i, np.int64))
        values.append(v)
        pixels.append(c)
    table = pd.DataFrame({
        "image": np.concatenate(image_idx) if image_idx else np.empty(0, np.int64),
        "value": np.concatenate(values) if values else np.empty(0, np.int64),
        "pixels": np.concatenate(pixels) if pixels else np.empty(0, np.int64),
    })
    split = rows["split"].astype("string").fillna("(none)").to_numpy()
    labelled = table[table["value"] != IGNORE]
    per_image_total = labelled.groupby("image")["pixels"].sum()
    foreground = labelled[(labelled["value"] != background) & labelled["value"].isin(list(names))]
    per_image_fg = foreground.groupby("image")["pixels"].sum().reindex(per_image_total.index, fill_value=0)
    coverage = (per_image_fg / per_image_total.where(per_image_total > 0)).dropna()
    total = float(labelled["pixels"].sum())
    by_value = labelled.groupby("value")["pixels"].sum()
    images_with = labelled.groupby("value")["image"].nunique()
    splits = sorted(set(split.tolist()))
    per_class: dict[str, Any] = {}
    if background is not None:
        per_class["background"] = {"value": 0, "pixel_share": float(by_value.get(0, 0)) / total if total else 0.0,
                                   "images": int(images_with.get(0, 0))}
    for value, name in names.items():
        present = labelled[labelled["value"] == value]["image"].to_numpy()
        per_class[name] = {
            "value": value,
            "pixel_share": float(by_value.get(value, 0)) / total if total else 0.0,
            "images": int(images_with.get(value, 0)),
            "images_by_split": {s: int((split[present] == s).sum()) for s in splits},
        }
    known = set(names) | {IGNORE} | ({background} if background is not None else set())
    unknown = table[~table["value"].isin(list(known))]
    ignore = float(table.loc[table["value"] == IGNORE, "pixels"].sum())
    read = len(items) - len(errors)
    missing = {s: [n for n, c in per_class.items() if n != "background" and c["images_by_split"].get(s, 0) == 0]
               for s in splits if s != "(none)"}
    return {
        "masks": int(read),
        "unreadable": len(errors),
        "unreadable_list": [e for _, e in errors[:MAX_UNREADABLE]],
        "coverage": summary(coverage),
        "images_without_foreground": int((per_image_fg == 0).sum()),
        "ignore_share": ignore / (total + ignore) if total + ignore else 0.0,
        "classes": per_class,
        "unknown_values": {str(int(v)): int(n) for v, n in unknown.groupby("value")["image"].nunique().items()},
        "missing_from_split": {s: v for s, v in missing.items() if v},
    }
