"""Generated ground truth and predictions for the evaluator's tests and benchmark.

A detection/instance manifest (boxes, optional RLE masks, crowd regions, empty images, sparse
category ids, tiny objects on the COCO area-range borders) and a COCO results list that scores
it: jittered copies of the ground truth, class confusions, false positives, tied scores and
images with more detections than maxDets. Everything is drawn from one seeded generator.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from datakit.manifest import ANNOTATION_COLUMNS, IMAGE_COLUMNS, Manifest, empty_table

# sparse, non-contiguous ids: what COCO itself does (1..90 with gaps)
SPARSE_IDS = (1, 2, 3, 5, 7, 11, 13, 17, 23, 42, 64, 90)
# areas exactly on and one pixel around the small/medium/large borders (32², 96²)
BORDER_SIDES = ((32, 32), (16, 64), (31, 33), (33, 31), (96, 96), (48, 192), (95, 97))


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _ellipse_mask(box: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    x, y, w, h = box
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = x + w / 2, y + h / 2
    inside = ((xx + 0.5 - cx) / max(w / 2, 0.5)) ** 2 + ((yy + 0.5 - cy) / max(h / 2, 0.5)) ** 2 <= 1.0
    return inside


def detection_set(
    n_images: int = 20,
    n_boxes: int = 150,
    n_predictions: int = 200,
    *,
    seed: int = 0,
    n_categories: int = 6,
    masks: bool = False,
    crowd_fraction: float = 0.05,
    empty_images: int = 2,
    overfull_images: int = 1,
    tie_scores: bool = True,
    size: tuple[int, int] = (160, 120),
) -> tuple[Manifest, list[dict[str, Any]]]:
    """(manifest, COCO results) — image ids 1..N as the manifest's source ids; category ids sparse."""
    rng = np.random.default_rng(seed)
    width, height = size
    cat_ids = list(SPARSE_IDS[:n_categories]) if n_categories <= len(SPARSE_IDS) else \
        sorted(rng.choice(np.arange(1, 10 * n_categories), n_categories, replace=False).tolist())
    categories = [{"id": int(c), "name": f"class_{c}"} for c in cat_ids]
    image_numbers = np.arange(1, n_images + 1)
    images = pd.DataFrame({
        "id": [f"img{i:06d}" for i in image_numbers],
        "path": [f"images/img{i:06d}.png" for i in image_numbers],
        "width": width, "height": height, "status": "ok", "format": "png",
        "source_id": [str(i) for i in image_numbers],
    })
    # ground truth: the first `empty_images` images hold nothing
    owners = rng.integers(min(empty_images, n_images - 1), n_images, n_boxes)
    owners.sort()
    rows: list[dict[str, Any]] = []
    gt: list[tuple[int, int, tuple[float, float, float, float], bool]] = []
    for k, owner in enumerate(owners):
        if k % 7 == 3:
            w, h = BORDER_SIDES[(k // 7) % len(BORDER_SIDES)]
            w, h = float(min(w, width - 1)), float(min(h, height - 1))
        else:
            w = float(np.exp(rng.uniform(np.log(3), np.log(width * 0.9))))
            h = float(np.clip(w * np.exp(rng.normal(0, 0.4)), 2, height * 0.9))
            w, h = round(w, 2), round(h, 2)
        x = round(float(rng.uniform(0, width - w)), 2)
        y = round(float(rng.uniform(0, height - h)), 2)
        cat = int(rng.choice(cat_ids))
        crowd = bool(rng.random() < crowd_fraction)
        box = (x, y, w, h)
        row = {"id": str(k + 1), "image_id": images["id"].iat[owner], "category": f"class_{cat}",
               "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "area": w * h, "iscrowd": int(crowd)}
        if masks:
            rle = _rle(_ellipse_mask(box, width, height))
            from pycocotools import mask as mask_utils

            row["area"] = float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))
            row["segmentation_kind"] = "rle"
            row["segmentation"] = json.dumps(rle)
        elif k % 7 == 3:
            row["area"] = float(w * h)
        rows.append(row)
        gt.append((int(owner), cat, box, crowd))
    annotations = pd.DataFrame(rows) if rows else empty_table(ANNOTATION_COLUMNS)
    manifest = Manifest(images=images, annotations=annotations, categories=categories,
                        tasks=["instance_segmentation" if masks else "detection"])

    predictions: list[dict[str, Any]] = []

    def add(owner: int, cat: int, box: tuple[float, float, float, float], score: float) -> None:
        x, y, w, h = box
        x, y = float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1))
        w, h = float(np.clip(w, 1, width - x)), float(np.clip(h, 1, height - y))
        entry: dict[str, Any] = {"image_id": int(image_numbers[owner]), "category_id": cat,
                                 "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "score": score}
        if masks:
            entry["segmentation"] = _rle(_ellipse_mask((x, y, w, h), width, height))
        predictions.append(entry)

    def score() -> float:
        # a coarse grid makes ties common, as real detectors' rounded scores do
        return round(float(rng.uniform(0.05, 1.0)), 2 if tie_scores else 6)

    skip_images = set(range(max(0, n_images - 2), n_images))  # the last images get no predictions
    for owner, cat, (x, y, w, h), crowd in gt:
        if len(predictions) >= n_predictions:
            break
        if owner in skip_images or rng.random() < 0.15:
            continue
        jitter = rng.normal(0, 0.08, 4) * np.array([w, h, w, h])
        box = (x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3])
        other = int(rng.choice(cat_ids)) if rng.random() < 0.1 else cat
        add(owner, other, box, score())
    overfull = [o for o in range(n_images) if o not in skip_images][:overfull_images]
    for owner in overfull:  # more detections than maxDets=100 on one image
        for _ in range(130):
            w, h = rng.uniform(4, width / 2), rng.uniform(4, height / 2)
            add(owner, int(rng.choice(cat_ids)), (rng.uniform(0, width - w), rng.uniform(0, height - h), w, h), score())
    candidates = [o for o in range(n_images) if o not in skip_images]
    while len(predictions) < n_predictions and candidates:
        owner = int(rng.choice(candidates))
        w, h = rng.uniform(3, width * 0.8), rng.uniform(3, height * 0.8)
        add(owner, int(rng.choice(cat_ids)), (rng.uniform(0, width - w), rng.uniform(0, height - h), w, h), score())
    return manifest, predictions
