"""`datakit eval --predictions`: score a predictions file against a manifest.

Read the manifest's images (a split, or all usable ones), read and lint the predictions, pick the
task from what the file holds (or ``--task``), compute the metrics, write ``metrics.json`` (and the
plots) into the output folder, and return every number as a dict. Metric names are the task
seam's: localization ``accuracy``, ``box_iou``, ``acc_iou50``; detection ``map``, ``map50``,
``map75``; instance ``mask_map``, ``mask_map50``, ``map``, ``map50``; semantic ``miou``, ``dice``,
``pixel_accuracy``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from datakit.atomic import write_json
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.manifest_header import check_output_folder, takes_allow_outside
from datakit.metrics import coco
from datakit.metrics.lint import Lint
from datakit.metrics.readers import Detections, MaskFolder, read_predictions
from datakit.metrics.truth import Truth, ground_truth, load_truth

TASKS = ("detection", "instance", "semantic", "localization")
_TASK_ALIASES = {"detect": "detection", "bbox": "detection", "instance_segmentation": "instance", "segm": "instance",
                 "segment": "instance", "semantic_segmentation": "semantic", "localize": "localization",
                 "localisation": "localization"}


def task_name(task: str | None) -> str | None:
    if task is None:
        return None
    name = _TASK_ALIASES.get(task, task)
    if name not in TASKS:
        raise DatakitError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return name


def parse_max_dets(text: str | None) -> list[int] | None:
    """``"1,10,100"`` -> [1, 10, 100]; None keeps the default."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise DatakitError(f"--max-dets takes comma-separated positive integers, e.g. 1,10,100; found {text!r}") from None
    if not values or min(values) < 1:
        raise DatakitError(f"--max-dets takes comma-separated positive integers, e.g. 1,10,100; found {text!r}")
    return values


def _infer_task(predictions: Detections | MaskFolder, truth: Truth, task: str | None) -> str:
    if isinstance(predictions, MaskFolder):
        if task not in (None, "semantic"):
            raise DatakitError(f"a folder of mask PNGs holds semantic predictions, not {task}")
        return "semantic"
    if task == "semantic":
        raise DatakitError("semantic scoring takes a folder of mask PNGs (pixel value = category id, 255 = ignore)")
    ann = truth.manifest.annotations
    gt_masks = bool(len(ann)) and bool(ann["segmentation_kind"].notna().any())
    if task is None:
        if "localization" in (truth.manifest.tasks or []):
            return "localization"
        if predictions.rles is not None and not gt_masks:
            truth.notes.append("the predictions hold masks but the ground truth has none: scored as boxes "
                               "(detection); pass --task instance to score empty ground-truth masks anyway")
            return "detection"
        return "instance" if predictions.rles is not None else "detection"
    if task == "instance" and predictions.rles is None:
        raise DatakitError("--task instance needs masks in the predictions (a 'segmentation' per result, or YOLO "
                           "polygon lines); these hold boxes only")
    return task


@takes_allow_outside
def evaluate_predictions(predictions: str | os.PathLike[str], manifest: str | os.PathLike[str],
                         **options: Any) -> dict[str, Any]:
    """Score a predictions file or folder against the manifest's ground truth (``datakit eval
    --predictions``); options as for ``score``: split, task, max_dets, lenient, output, plots."""
    return score(predictions, manifest, **options)[0]


def _manifest_or_run(value: str | os.PathLike[str]) -> tuple[Any, str | None, str | None]:
    """The manifest ``--manifest`` names, or, for a training run (or a sweep or pipeline folder), the
    manifest it trained on with the splits it recorded in splits.csv: a pipeline's manifest often
    has no splits of its own, so ``--split test`` found none where ``datakit eval RUN`` scores 30 images.
    Third: the run's task (None for a manifest)."""
    from datakit.engine.rundir import RunDir
    from datakit.run_source import find_run

    found = find_run(value)
    run = RunDir(found.path) if found.path.is_dir() else None
    if run is None or not run.is_run():
        return load_manifest(value), None, None
    info = run.read_info()
    recorded = info.get("manifest")
    if not recorded:
        raise DatakitError(f"{found.path}: the run recorded no manifest; pass the manifest itself with --manifest")
    loaded = load_manifest(recorded)
    if run.splits.is_file():
        loaded.images["split"] = loaded.images["id"].astype(str).map(run.split_of()).astype("string")
    return loaded, f"ground truth: {recorded} with the splits of {found.path}/splits.csv", info.get("task")


def score(
    predictions: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    split: str | None = None,
    task: str | None = None,
    max_dets: Sequence[int] | None = None,
    lenient: bool = False,
    output: str | os.PathLike[str] | None = None,
    plots: bool = True,
    max_worst: int = 20,
    show_progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics dict and the raw arrays (COCOeval precision/recall/scores, confusion matrices).

    ``split``: train/val/test/all (default all usable images); ``task``: detection, instance,
    semantic or localization (default from the predictions); ``max_dets``: detections kept per
    image (default 1, 10, 100); ``lenient``: skip predictions that fail the checks instead of
    stopping; ``output``: report folder (default ``<predictions>-eval`` beside them); ``plots``:
    write PNG/CSV files; ``max_worst``: images listed in ``worst_images``; ``show_progress``: a
    progress bar while mask PNGs are read.
    """
    task = task_name(task)
    path = Path(predictions)
    max_dets = sorted({int(m) for m in (max_dets or coco.DEFAULT_MAX_DETS)})
    if not max_dets or max_dets[0] < 1:
        raise DatakitError(f"--max-dets must be positive integers, found {max_dets}")
    loaded, splits_note, run_task = _manifest_or_run(manifest)
    if output is not None:
        check_output_folder(output, "-o", loaded)
    truth = load_truth(loaded, split)
    if task is None and run_task == "localization":
        # a localization run's own predictions score as localization, as `datakit eval RUN` does
        task = "localization"
        truth.notes.append("task localization: the run's (-m RUN); --task detection scores every box")
    if splits_note and split not in (None, "all"):
        truth.notes.append(splits_note)
    lint = Lint(str(path))
    read = read_predictions(path, truth, lint)
    task = _infer_task(read, truth, task)
    if task == "semantic":
        from datakit.metrics import segmentation

        checked = segmentation.lint_masks(read, truth, lint, show_progress)  # type: ignore[arg-type]
        skipped = lint.finish(lenient)
        result, extras = segmentation.score(checked, truth)
    else:
        skipped = lint.finish(lenient)
        if task == "localization":
            from datakit.metrics import localization

            result, extras = localization.score(read, truth)  # type: ignore[arg-type]
        else:
            result, extras = score_detections(read, truth, task, max_dets, max_worst)  # type: ignore[arg-type]
    out_dir = Path(output) if output else path.parent / f"{path.stem}-eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "task": task, **result, "predictions": str(path), "predictions_format": read.kind,
        "manifest": str(loaded.location), "split": truth.split or "all", "images": len(truth.images), "skipped": skipped, "notes": truth.notes,
        "output": str(out_dir),
    }
    files: dict[str, str] = {}
    if plots:
        from datakit.metrics import figures

        files.update(figures.write_all(result, extras, out_dir))
    files["metrics.json"] = str(out_dir / "metrics.json")
    result["files"] = files
    write_json(out_dir / "metrics.json", result, default=_json_default)
    return result, extras


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def detection_instances(dets: Detections, truth: Truth, image_number: dict[str, int], areas: str) -> coco.Instances:
    image = np.fromiter((image_number[i] for i in dets.image), np.int64, len(dets))
    category = np.fromiter((truth.category_ids[c] for c in dets.category), np.int64, len(dets))
    if areas == "mask":
        from datakit.geometry import rle_areas

        area = rle_areas(dets.rles) if len(dets) else np.zeros(0)
    else:
        area = dets.boxes[:, 2] * dets.boxes[:, 3]
    return coco.Instances(image, category, dets.boxes, area, np.arange(1, len(dets) + 1, dtype=np.int64),
                          score=dets.score, rles=dets.rles)


def score_detections(dets: Detections, truth: Truth, task: str, max_dets: list[int],
                     max_worst: int = 20) -> tuple[dict[str, Any], dict[str, Any]]:
    """bbox (and segm for instance) COCOeval with datakit's summary, confusion matrix, worst images."""
    from datakit.metrics import confusion

    masks = task == "instance"
    gt, manifest_of = ground_truth(truth, masks)
    image_number = {v: k for k, v in manifest_of.items()}
    names = truth.category_of_id
    category_ids = sorted(truth.category_ids.values())
    gt_counts = Counter(gt.category[gt.iscrowd == 0].tolist())
    dt_counts = Counter(truth.category_ids[c] for c in dets.category)
    image_ids = sorted(manifest_of)
    metrics: dict[str, Any] = {}
    na: dict[str, str] = {}
    out: dict[str, Any] = {}
    extras: dict[str, Any] = {"names": names}
    # pycocotools' loadRes takes every detection's area from its box when the results carry boxes,
    # else from its mask (for the bbox pass too)
    box_dt = detection_instances(dets, truth, image_number, "box" if dets.box_area else "mask")
    for iou_type, prefix in [("bbox", "")] + ([("segm", "mask_")] if masks else []):
        dt = box_dt
        result = coco.evaluate(gt, dt, image_ids, category_ids, iou_type, max_dets)
        summary = coco.summarize(result, names, gt_counts, dt_counts, prefix)
        metrics.update(summary["metrics"])
        na.update(summary["na"])
        out[iou_type] = {"per_class": summary["per_class"], "stats": summary["stats"],
                         "protocol": coco.protocol(result, dets.box_area)}
        extras[iou_type] = result
    matrix = confusion.detection_confusion(gt, box_dt, category_ids, image_ids)
    paths = {n: truth.paths[m] for n, m in manifest_of.items()}
    labels = [names[c] for c in category_ids] + ["background"]
    extras["confusion"] = matrix
    return {
        **metrics, "metrics": metrics, "na": na, **out,
        "counts": {"images": len(image_ids), "ground_truth": int((gt.iscrowd == 0).sum()),
                   "crowd_regions": int(gt.iscrowd.sum()), "detections": len(dets),
                   "images_without_predictions": dets.unmatched_images},
        "confusion_matrix": {"labels": labels, "rows": "predicted", "columns": "true",
                             "conf": matrix["conf"], "iou": matrix["iou"], "matrix": matrix["matrix"].tolist()},
        "worst_images": confusion.worst_images(matrix, image_ids, paths, max_worst),
    }, extras
