"""Semantic segmentation: mIoU, per-class IoU, Dice and pixel accuracy from one confusion matrix.

Ground truth is each image's class map (the manifest's ``semantic_mask``); predictions are mask
PNGs matched by file stem. Pixel values are category ids; 0 is background when no category has
id 0; 255 is ignore (as mmseg and torchvision do): ground-truth pixels of 255 are left out of
every count, never a class dropped from the mean. A predicted 255 (or a value that is no class)
on a scored pixel counts against the true class (a miss) and for no class. Per class:
IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN); a class absent from both ground truth
and predictions has no IoU (NaN) and is left out of the means (``nanmean``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from datakit import geometry
from datakit.console import progress_bar
from datakit.metrics.lint import Lint
from datakit.metrics.readers import MaskFolder
from datakit.metrics.truth import Truth
from datakit.tasks.painted_maps import blank, has_instance_masks, paint_instances

IGNORE = geometry.IGNORE  # 255: one ignore value for targets, loss and metrics


@dataclass
class Checked:
    matrix: np.ndarray | None = None   # confusion of the images that passed, accumulated as read
    scored: int = 0
    values: list[int] = field(default_factory=list)   # class values (pixel value of each class)
    labels: list[str] = field(default_factory=list)
    no_truth: int = 0


def classes(truth: Truth) -> tuple[list[int], list[str]]:
    """Pixel value and name of each class: the manifest's categories, background 0 when free."""
    cats = sorted(truth.manifest.categories, key=lambda c: int(c["id"]))
    values = [int(c["id"]) for c in cats]
    labels = [str(c["name"]) for c in cats]
    if 0 not in values:
        values.insert(0, 0)
        labels.insert(0, "background")
    return values, labels


def lint_masks(folder: MaskFolder, truth: Truth, lint: Lint, show_progress: bool = False) -> Checked:
    """Read every pair and count its pixels; wrong sizes, unknown values and missing predictions
    go to the lint (those images are not counted)."""
    values, labels = classes(truth)
    checked = Checked(values=values, labels=labels, matrix=confusion([], values))
    allowed = np.zeros(65536, dtype=bool)
    allowed[values] = True
    allowed[IGNORE] = True
    root = truth.manifest.root()
    column = truth.images["semantic_mask"] if "semantic_mask" in truth.images else None
    masks = dict(zip(truth.images.index, column.tolist())) if column is not None else {}
    painted = _painted_truth(truth, values, labels)
    with progress_bar("Scoring masks", len(truth.images), show_progress) as advance:
        for image_id in truth.images.index.tolist():
            relative = masks.get(image_id)
            if blank(relative):
                gt = painted(image_id) if painted is not None else None
            else:
                gt = lambda relative=relative: geometry.read_label_png(root / str(relative))  # noqa: E731
            _check_one(image_id, gt, folder, truth, lint, checked, allowed)
            advance(1)
    if not checked.scored and not lint:
        if checked.no_truth == len(truth.images):
            lint.add_file_problem(f"{truth.manifest.location} has no class maps (semantic masks) nor instance masks "
                                  f"to paint them from, for its {len(truth.images)} images, to score mask PNGs "
                                  "against: ingest the data with --format masks, a VOC set with SegmentationClass/, "
                                  "or COCO with segmentations")
        else:
            lint.add_file_problem(f"none of the {len(truth.images)} images has both a ground-truth class map and a "
                                  "predicted mask: nothing to score")
    return checked


def _painted_truth(truth: Truth, values: list[int], labels: list[str]) -> Callable[[str], Callable[[], np.ndarray]] | None:
    """For images without a class PNG: their map painted from the instance masks, in category ids,
    as training paints it (None when no annotation has a mask: nothing to paint from)."""
    ann = truth.manifest.annotations
    if not has_instance_masks(ann):
        return None
    by_image = {str(k): g for k, g in ann.groupby(ann["image_id"].astype(str), sort=False)}
    value_of = dict(zip(labels, values))
    root = truth.manifest.root()

    def map_of(image_id: str) -> Callable[[], np.ndarray]:
        height, width = truth.size(image_id)
        return lambda: paint_instances(by_image.get(image_id), height, width, value_of, root)[0]
    return map_of


def _check_one(image_id: str, ground_truth: Callable[[], np.ndarray] | None, folder: MaskFolder, truth: Truth,
               lint: Lint, checked: Checked, allowed: np.ndarray) -> None:
    """Add one image's pixels to the confusion, or its problem to the lint."""
    if ground_truth is None:
        checked.no_truth += 1
        return
    path = folder.files.get(image_id)
    if path is None:
        lint.add("image(s) with a ground-truth class map but no predicted mask", truth.paths[image_id])
        return
    gt = ground_truth()
    pred = geometry.read_label_png(path)
    if pred.ndim != 2 or pred.shape != gt.shape:
        lint.add("predicted mask(s) of the wrong size", f"{path.name} {'x'.join(map(str, pred.shape[:2]))} "
                 f"for {'x'.join(map(str, gt.shape))}")
        return
    bad = ~allowed[pred.astype(np.int64)]
    if bad.any():
        lint.add("predicted mask(s) with pixel values that are no category id (nor 255 = ignore)",
                 f"{path.name}: {int(np.unique(pred[bad])[0])}")
        return
    checked.matrix += confusion([(gt, pred)], checked.values)
    checked.scored += 1


def confusion(pairs: list[tuple[np.ndarray, np.ndarray]], values: list[int]) -> np.ndarray:
    """K x (K+1) pixel counts, rows = true class, columns = predicted class then 'no class'."""
    k = len(values)
    index = np.full(65536, k, dtype=np.int64)   # any other predicted value: no class
    index[values] = np.arange(k)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    for gt, pred in pairs:
        t = index[gt.astype(np.int64).ravel()]
        p = index[pred.astype(np.int64).ravel()]
        keep = (gt.ravel() != IGNORE) & (t < k)   # ignore pixels (and unknown truth values) left out
        matrix += np.bincount(t[keep] * (k + 1) + p[keep], minlength=k * (k + 1)).reshape(k, k + 1)
    return matrix


def metrics_from_confusion(matrix: np.ndarray, labels: list[str]) -> dict[str, Any]:
    k = matrix.shape[0]
    tp = np.diag(matrix[:, :k]).astype(np.float64)
    fn = matrix.sum(axis=1) - tp          # true pixels predicted as another class or none
    fp = matrix[:, :k].sum(axis=0) - tp   # pixels predicted as the class that are another class
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    present = (tp + fp + fn) > 0
    total = matrix.sum()
    per_class = {
        name: {"iou": float(iou[i]) if present[i] else None, "dice": float(dice[i]) if present[i] else None,
               "pixels": int(matrix[i].sum()), "predicted_pixels": int(matrix[:, i].sum()),
               **({} if present[i] else {"note": "n/a: absent from ground truth and predictions"})}
        for i, name in enumerate(labels)
    }
    return {
        "miou": float(np.nanmean(iou)) if present.any() else None,
        "dice": float(np.nanmean(dice)) if present.any() else None,
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "per_class": per_class,
    }


def score(checked: Checked, truth: Truth) -> tuple[dict[str, Any], dict[str, Any]]:
    matrix = checked.matrix
    found = metrics_from_confusion(matrix, checked.labels)
    metrics = {"miou": found["miou"], "dice": found["dice"], "pixel_accuracy": found["pixel_accuracy"]}
    na = {k: "no scored pixels" for k, v in metrics.items() if v is None}
    return {
        **metrics, "metrics": metrics, "na": na, "per_class": found["per_class"],
        "protocol": {"text": f"classes = category ids {checked.values} ({', '.join(checked.labels)}); pixel value "
                             f"{IGNORE} ignored in ground truth; a predicted {IGNORE} or unknown value counts as a "
                             "miss; mIoU and Dice are nanmeans over classes present in ground truth or predictions"},
        "counts": {"images": len(truth.images), "scored_images": checked.scored, "images_without_class_map": checked.no_truth,
                   "scored_pixels": int(matrix.sum())},
        "confusion_matrix": {"labels": checked.labels, "rows": "true", "columns": "predicted",
                             "no_class_column": [int(v) for v in matrix[:, -1]],
                             "matrix": matrix[:, :-1].tolist(), "title": "pixels (rows: true class)"},
    }, {"confusion": matrix}
