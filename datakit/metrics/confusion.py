"""Detection confusion matrix with a background row and column, as Ultralytics draws it, and
the images with the most errors.

Detections with score ≥ ``conf`` (0.25) are matched to non-crowd ground truth of any class at
IoU > ``iou`` (0.45): candidate pairs by decreasing IoU, each detection and each object used
once. A matched pair adds to (predicted class, true class); an unmatched object to (background,
true class) — missed; an unmatched detection to (predicted class, background) — a false alarm.
Rows are predicted classes, columns true classes, background last in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datakit.metrics.coco import Instances, _runs, box_iou_pairs

CONF, IOU = 0.25, 0.45


def same_image_pairs(gt_image: np.ndarray, dt_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (gt row, dt row) pair of objects on the same image, vectorized."""
    g_rows = np.argsort(gt_image, kind="stable")
    d_rows = np.argsort(dt_image, kind="stable")
    g_start, g_count = _runs(gt_image[g_rows])
    d_start, d_count = _runs(dt_image[d_rows])
    both, g_at, d_at = np.intersect1d(gt_image[g_rows][g_start], dt_image[d_rows][d_start], return_indices=True)
    if not len(both):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ng, nd = g_count[g_at], d_count[d_at]
    sizes = ng * nd
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    group = np.repeat(np.arange(len(both)), sizes)
    local = np.arange(int(sizes.sum())) - offsets[group]
    return g_rows[g_start[g_at][group] + local // nd[group]], d_rows[d_start[d_at][group] + local % nd[group]]


def detection_confusion(gt: Instances, dt: Instances, category_ids: list[int], image_ids: list[int],
                        conf: float = CONF, iou: float = IOU) -> dict[str, Any]:
    gt = gt.take(np.flatnonzero(gt.iscrowd == 0))
    dt = dt.take(np.flatnonzero(dt.score >= conf))
    index = {c: k for k, c in enumerate(category_ids)}
    background = len(category_ids)
    g_cls = np.fromiter((index[c] for c in gt.category.tolist()), np.int64, len(gt))
    d_cls = np.fromiter((index[c] for c in dt.category.tolist()), np.int64, len(dt))
    g_pair, d_pair = same_image_pairs(gt.image, dt.image)
    values = box_iou_pairs(dt.boxes[d_pair], gt.boxes[g_pair], np.zeros(len(g_pair))) if len(g_pair) else np.zeros(0)
    keep = values > iou
    g_pair, d_pair, values = g_pair[keep], d_pair[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    g_pair, d_pair = g_pair[order], d_pair[order]
    _, first = np.unique(d_pair, return_index=True)        # best pair of each detection
    first.sort()
    g_pair, d_pair = g_pair[first], d_pair[first]
    _, first = np.unique(g_pair, return_index=True)        # then of each object
    g_pair, d_pair = g_pair[first], d_pair[first]
    size = background + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (d_cls[d_pair], g_cls[g_pair]), 1)
    g_matched = np.zeros(len(gt), dtype=bool)
    g_matched[g_pair] = True
    d_matched = np.zeros(len(dt), dtype=bool)
    d_matched[d_pair] = True
    np.add.at(matrix, (np.full((~g_matched).sum(), background), g_cls[~g_matched]), 1)
    np.add.at(matrix, (d_cls[~d_matched], np.full((~d_matched).sum(), background)), 1)

    # per image: missed objects, false alarms, wrong classes
    position = {i: n for n, i in enumerate(image_ids)}
    n = len(image_ids)
    g_pos = np.fromiter((position[i] for i in gt.image.tolist()), np.int64, len(gt))
    d_pos = np.fromiter((position[i] for i in dt.image.tolist()), np.int64, len(dt))
    wrong = d_cls[d_pair] != g_cls[g_pair]
    return {
        "matrix": matrix,
        "missed": np.bincount(g_pos[~g_matched], minlength=n),
        "false": np.bincount(d_pos[~d_matched], minlength=n),
        "wrong_class": np.bincount(g_pos[g_pair[wrong]], minlength=n),
        "objects": np.bincount(g_pos, minlength=n),
        "detections": np.bincount(d_pos, minlength=n),
        "conf": conf, "iou": iou,
    }


def worst_images(confusion: dict[str, Any], image_ids: list[int], paths: dict[int, str], limit: int) -> list[dict[str, Any]]:
    errors = confusion["missed"] + confusion["false"] + confusion["wrong_class"]
    order = np.lexsort((np.arange(len(errors)), -errors))
    out = []
    for i in order[:limit].tolist():
        if errors[i] == 0:
            break
        out.append({"image": paths[image_ids[i]], "errors": int(errors[i]), "missed": int(confusion["missed"][i]),
                    "false_alarms": int(confusion["false"][i]), "wrong_class": int(confusion["wrong_class"][i]),
                    "objects": int(confusion["objects"][i]), "detections": int(confusion["detections"][i])})
    return out
