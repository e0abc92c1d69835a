"""Localization (one object per image): class accuracy, mean box IoU, accuracy at IoU ≥ 0.5.

Each image's ground truth is its one object (its largest box where it holds several, as
localization trains; crowd regions and boxes without area are not objects); its prediction is the highest-scoring detection
the predictions file holds for it (file order on ties). An image without a prediction counts as
wrong with IoU 0. ``accuracy``: predicted class = true class; ``box_iou``: mean IoU of predicted
and true box over all images (class ignored); ``acc_iou50``: class right and IoU ≥ 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datakit.metrics.coco import box_iou_pairs
from datakit.metrics.readers import Detections
from datakit.metrics.truth import Truth
from datakit.tasks.box_targets import largest_boxes, target_boxes


def score(dets: Detections, truth: Truth) -> tuple[dict[str, Any], dict[str, Any]]:
    ann = truth.manifest.annotations
    ann = target_boxes(ann[ann["image_id"].astype(str).isin(truth.images.index)])[1]
    counts = ann["image_id"].astype(str).value_counts()
    several = counts[counts > 1]
    if len(several):
        # as training does: the largest box is the image's object (a localization run trained on these)
        truth.notes.append(f"{len(several)} image(s) hold several objects (e.g. {truth.images.at[several.index[0], 'path']}: "
                           f"{int(several.iloc[0])}): each one's largest box is its object, as localization trains; "
                           "--task detection scores them all")
        ann = largest_boxes(ann, truth.images.index)
    ids = truth.images.index.tolist()
    position = {i: n for n, i in enumerate(ids)}
    n = len(ids)
    has_gt = np.zeros(n, dtype=bool)
    gt_box = np.zeros((n, 4))
    gt_cls = np.full(n, "", dtype=object)
    rows = ann["image_id"].astype(str).map(position).to_numpy()
    has_gt[rows] = True
    gt_box[rows] = ann[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=np.float64)
    gt_cls[rows] = ann["category"].astype(str).to_numpy()
    # the top detection of each image: by score, file order on ties
    best = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((np.arange(len(dets)), -dets.score)) if len(dets) else np.zeros(0, dtype=np.int64)
    for d in order.tolist():
        p = position[dets.image[d]]
        if best[p] < 0:
            best[p] = d
    scored = has_gt
    have = scored & (best >= 0)
    iou = np.zeros(n)
    correct = np.zeros(n, dtype=bool)
    if have.any():
        picks = best[have]
        iou[have] = box_iou_pairs(dets.boxes[picks], gt_box[have], np.zeros(len(picks)))
        correct[have] = np.asarray([dets.category[d] for d in picks.tolist()], dtype=object) == gt_cls[have]
    m = int(scored.sum())
    metrics: dict[str, float | None] = {
        "accuracy": float(correct[scored].mean()) if m else None,
        "box_iou": float(iou[scored].mean()) if m else None,
        "acc_iou50": float((correct & (iou >= 0.5))[scored].mean()) if m else None,
    }
    per_class = {}
    for name in truth.manifest.category_names:
        rows_c = scored & (gt_cls == name)
        k = int(rows_c.sum())
        per_class[name] = {"images": k, "accuracy": float(correct[rows_c].mean()) if k else None,
                           "box_iou": float(iou[rows_c].mean()) if k else None,
                           "acc_iou50": float((correct & (iou >= 0.5))[rows_c].mean()) if k else None}
    na = {k: "no image of the evaluated set has a ground-truth object" for k, v in metrics.items() if v is None}
    return {
        **metrics, "metrics": metrics, "na": na, "per_class": per_class,
        "protocol": {"text": "one object per image; the prediction is the image's highest-scoring detection; an image "
                             "without one counts as wrong with IoU 0; box IoU ignores the class; acc_iou50 needs the "
                             "right class and IoU ≥ 0.5"},
        "counts": {"images": n, "scored_images": m, "images_without_object": n - m,
                   "images_without_prediction": int((scored & (best < 0)).sum()), "detections": len(dets)},
    }, {}
