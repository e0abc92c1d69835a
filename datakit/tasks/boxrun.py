"""A trained box run (localization, detection) at work: detections for image files in their own
pixels, ``predict``'s table and COCO results, and ``eval`` on a split through ``datakit.metrics``
(the same scoring as ``datakit eval --predictions``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from datakit.errors import DatakitError
from datakit.tasks.boxdata import load_sample
from datakit.tasks.filebatches import batches_of_files

# boxes x0 y0 x1 y1 (original pixels), scores, class indices; for an instance run also the masks
# (RLEs on the original image, ``datakit.tasks.instancerun``)
Found = tuple[np.ndarray, ...]


def detect_files(loaded: Any, paths: Sequence[Path], batch_size: int = 64,
                 on_image: Callable[[int], None] | None = None,
                 sizes: list[tuple[int, int] | None] | None = None) -> tuple[list[Found | None], list[str | None]]:
    """Detections per file, mapped back onto the original image; a file that fails gets its error.
    ``sizes``, a list, receives each file's original (height, width)."""
    from datakit.augmentation.resize import boxes_to_original

    pre = loaded.preprocess
    found: list[Found | None] = [None] * len(paths)
    errors: list[str | None] = [None] * len(paths)
    if sizes is not None:
        sizes[:] = [None] * len(paths)
    for good, batch, shapes in batches_of_files(paths, batch_size, lambda path: load_sample(path, pre), errors, on_image):
        with torch.inference_mode():
            outputs = loaded.task.detections(loaded.model, pre.to_tensor(batch).to(loaded.device))
        for i, (h, w), out in zip(good, shapes, outputs):
            if sizes is not None:
                sizes[i] = (h, w)
            boxes = boxes_to_original(out["boxes"].float().cpu().numpy(), h, w, pre.height, pre.width, pre.resize)
            found[i] = (boxes, out["scores"].float().cpu().numpy(), out["labels"].cpu().numpy().astype(np.int64))
            if "masks" in out:  # an instance run: its masks, as RLE on the original image
                from datakit.tasks.instancerun import mask_rles

                found[i] += (mask_rles(out["masks"], h, w, pre),)
    return found, errors


def rows(paths: Sequence[str], found: list[Found | None], errors: list[str | None], classes: list[str]) -> pd.DataFrame:
    """One row per detection: path, label, score, x, y, w, h (original pixels), error; an image
    without any detection keeps one row with an empty label, a failed image one with its error."""
    out: dict[str, list[Any]] = {k: [] for k in ("path", "label", "score", "x", "y", "w", "h", "error")}
    for path, f, error in zip(paths, found, errors):
        n = 0 if f is None else len(f[0])
        if n == 0:
            for k, v in zip(out, (path, None, np.nan, np.nan, np.nan, np.nan, np.nan, error)):
                out[k].append(v)
            continue
        boxes, scores, labels = f[:3]  # type: ignore[misc]
        for b, s, c in zip(boxes, scores, labels):
            values = (path, classes[int(c)], float(s), float(b[0]), float(b[1]), float(b[2] - b[0]),
                      float(b[3] - b[1]), None)
            for k, v in zip(out, values):
                out[k].append(v)
    table = pd.DataFrame(out)
    table["label"] = table["label"].astype("string")
    table["error"] = table["error"].astype("string")
    return table


def coco_results(names: Sequence[str], found: list[Found | None], category_ids: Sequence[int],
                 image_ids: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """COCO results entries (``image_id``, ``file_name``, ``category_id``, ``bbox`` x y w h,
    ``score``, and for an instance run ``segmentation`` as RLE) for ``datakit eval --predictions``
    and other COCO tools. ``image_id`` is the integer id datakit's COCO export writes for the image
    (given in ``image_ids``; left out for an image that is in no manifest); ``file_name`` names the
    image too, and the evaluator checks both agree."""
    results = []
    for n, (name, f) in enumerate(zip(names, found)):
        if f is None:
            continue
        number = None if image_ids is None else image_ids[n]
        head: dict[str, Any] = {} if number is None else {"image_id": int(number)}
        for b, s, c, *mask in zip(*f):
            entry = {**head, "file_name": name, "category_id": int(category_ids[int(c)]),
                     "bbox": [round(float(v), 3) for v in (b[0], b[1], b[2] - b[0], b[3] - b[1])],
                     "score": round(float(s), 6)}
            if mask:
                from datakit.tasks.instancerun import rle_json

                entry["segmentation"] = rle_json(mask[0])
            results.append(entry)
    return results


def above(f: Found | None, min_score: float) -> Found | None:
    """The detections of one image scoring at least ``min_score`` (masks kept with their boxes)."""
    if f is None:
        return None
    keep = np.flatnonzero(f[1] >= min_score)
    return tuple(a[keep] if isinstance(a, np.ndarray) else [a[i] for i in keep] for a in f)


def export_category_ids(classes: Sequence[str], manifest_ids: Sequence[int] | None) -> list[int]:
    """The COCO category id of each class as datakit's COCO export (and so the evaluator) numbers
    it: the manifest's id, shifted by one when a category has id 0 (``target_category_ids``)."""
    from datakit.formats.base import Report, target_category_ids

    if not manifest_ids:  # an old run without its ids: the export's numbering of classes in order
        return list(range(1, len(classes) + 1))
    table = [{"id": int(i), "name": c} for c, i in zip(classes, manifest_ids)]
    mapping = target_category_ids(table, "keep_nonzero", Report(), "COCO category ids")
    return [mapping[c] for c in classes]


def manifest_image_ids(manifest: Any, paths: Sequence[Path]) -> list[int | None]:
    """Each file's COCO image id as datakit's export of ``manifest`` writes it (per split file);
    None for a file that is not one of the manifest's usable images."""
    from datakit.metrics.truth import load_truth

    truth = load_truth(manifest, "all")
    root = manifest.root()
    number = {os.path.normpath(os.path.abspath(root / p)): truth.export_ids.get(i) for i, p in truth.paths.items()}
    return [number.get(os.path.normpath(os.path.abspath(p))) for p in paths]



def eval_truth(loaded: Any, manifest: str | os.PathLike[str] | None, split: str) -> tuple[Any, Any, str]:
    """(manifest, its truth for ``split``, where the split came from) for ``eval RUN``: the split the
    run recorded (splits.csv) when the manifest is the one it trained on or has no splits."""
    from datakit.engine.rundir import RunDir
    from datakit.manifest import load_manifest
    from datakit.metrics.truth import load_truth

    if manifest is None:
        manifest = loaded.info.get("manifest")
        if not manifest:
            raise DatakitError("no manifest recorded with this checkpoint; pass --manifest")
    data = load_manifest(manifest)
    source = "the manifest"
    recorded = RunDir(loaded.run_dir).splits if loaded.run_dir is not None else None
    same = str(data.location) == str(loaded.info.get("manifest"))
    if split != "all" and recorded is not None and recorded.is_file() and (same or data.images["split"].isna().all()):
        split_of = RunDir(loaded.run_dir).split_of()
        data.images["split"] = data.images["id"].astype(str).map(split_of).astype("string")
        source = "the run's splits.csv"
    return data, load_truth(data, split), source


def evaluate_run(loaded: Any, manifest: str | os.PathLike[str] | None, split: str, output: Any,
                 batch_size: int, show_progress: bool) -> dict[str, Any]:
    """``datakit eval RUN`` for a box task: detections on the split's images, scored by datakit.metrics."""
    from datakit.atomic import write_json
    from datakit.console import progress_bar
    from datakit.engine.rundir import RunDir
    from datakit.metrics import figures, localization
    from datakit.metrics.readers import Detections
    from datakit.metrics.scoring import _json_default, score_detections

    data, truth, source = eval_truth(loaded, manifest, split)
    root = data.root()
    paths = [root / p for p in truth.images["path"].astype(str)]
    with progress_bar(f"Evaluating on {split}", len(paths), show_progress) as advance:
        found, errors = detect_files(loaded, paths, batch_size, on_image=lambda n: advance(n))
    skipped = [{"path": str(p), "reason": e} for p, e in zip(paths, errors) if e is not None]
    ids = truth.images.index.tolist()
    masks = loaded.task.name == "instance_segmentation"  # its detections carry RLEs: scored as segm too
    image, category, boxes, scores, rles = [], [], [], [], []
    for image_id, f in zip(ids, found):
        if f is None:
            continue
        for b, s, c, *mask in zip(*f):
            image.append(image_id)
            category.append(loaded.classes[int(c)])
            boxes.append([b[0], b[1], b[2] - b[0], b[3] - b[1]])
            scores.append(float(s))
            rles += mask
    dets = Detections(image, category, np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                      np.asarray(scores, dtype=np.float64), rles=rles if masks else None, kind="run",
                      unmatched_images=sum(1 for f in found if f is None or not len(f[0])))
    if loaded.task.name == "localization":
        result, extras = localization.score(dets, truth)
    elif masks:
        result, extras = score_detections(dets, truth, "instance", [1, 10, 100])
    else:
        result, extras = score_detections(dets, truth, "detection", [1, 10, 100])
    out_dir = Path(output) if output else RunDir(loaded.run_dir or loaded.checkpoint.parent).eval_dir(split)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"task": loaded.task.name, **result, "split": split, "split_source": source,
              "checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch, "manifest": str(data.location),
              "classes": loaded.classes, "images": len(ids), "skipped": skipped, "notes": truth.notes,
              "predictions": str(out_dir / "predictions.json"), "predictions_format": "coco", "output": str(out_dir),
              "run": str(loaded.run_dir or loaded.checkpoint), "run_source": loaded.source}
    files = figures.write_all(result, extras, out_dir)
    files["detections.png"] = str(_grid(truth, paths, ids, found, loaded.classes, out_dir / "detections.png", split))
    if masks:
        from datakit.tasks.instancerun import overlay_grid

        files["instances.png"] = str(overlay_grid(truth, paths, ids, found, loaded.classes, out_dir / "instances.png",
                                                  split))
    names = truth.images["path"].astype(str).tolist()
    write_json(out_dir / "predictions.json", coco_results(names, found, [truth.category_ids[c] for c in loaded.classes],
                                                          [truth.export_ids.get(i) for i in ids]))
    files["predictions.json"] = str(out_dir / "predictions.json")
    files["metrics.json"] = str(out_dir / "metrics.json")
    result["files"] = files
    write_json(out_dir / "metrics.json", result, default=_json_default)
    return result


def write_outputs(out_dir: Path, names: Sequence[str], paths: Sequence[Path], found: list[Found | None],
                  sizes: list[tuple[int, int] | None], classes: list[str], category_ids: Sequence[int],
                  yolo: bool = False, draw: bool = False, image_ids: Sequence[int | None] | None = None,
                  min_score: float = 0.25) -> dict[str, str]:
    """``predict -o OUT``: ``predictions.json`` (COCO results, every box; instance runs: with RLE
    masks), ``labels/*.txt`` (YOLO: class cx cy w h score, normalized; every box) with ``yolo``,
    ``draw/*.png`` (the images with their boxes, or instance outlines in colour, scoring at least
    ``min_score``) with ``draw``."""
    import cv2

    from datakit.atomic import write_json, write_text
    from datakit.data import read_image
    from datakit.formats.base import flat_names

    out_dir.mkdir(parents=True, exist_ok=True)
    files_of = flat_names(list(names))
    files = {"predictions.json": str(write_json(out_dir / "predictions.json",
                                                coco_results(names, found, category_ids, image_ids)))}
    if yolo:
        # one file per image named by its stem (how `datakit eval --predictions labels/` and YOLO tools
        # match them); images that share a stem get their path flattened instead; class names beside
        (out_dir / "labels").mkdir(exist_ok=True)
        for name, f, size in zip(names, found, sizes):
            if f is None or size is None:
                continue
            h, w = size
            lines = [f"{int(c)} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                     f"{(b[3] - b[1]) / h:.6f} {float(s):.6f}" for b, s, c in zip(*f[:3])]
            write_text(out_dir / "labels" / f"{files_of[name]}.txt", "\n".join(lines) + ("\n" if lines else ""))
        write_text(out_dir / "classes.txt", "\n".join(classes) + "\n")
        files["labels/"] = str(out_dir / "labels")
        files["classes.txt"] = str(out_dir / "classes.txt")
    if draw:
        (out_dir / "draw").mkdir(exist_ok=True)
        for name, path, f in zip(names, paths, found):
            if f is None:
                continue
            if len(f) > 3:  # an instance run: outlines of its masks
                from datakit.tasks.instancerun import draw_instances

                image = draw_instances(read_image(path, 3), *f, classes, min_score=min_score)
            else:
                image = draw_boxes(read_image(path, 3), f, classes, min_score)
            target = out_dir / "draw" / f"{files_of[name]}.png"
            cv2.imwrite(str(target), image[:, :, ::-1])
        files["draw/"] = str(out_dir / "draw")
    return files


COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60)]


def draw_boxes(image: np.ndarray, found: Found, classes: list[str], min_score: float = 0.25,
               truth: Found | None = None) -> np.ndarray:
    """RGB image with predicted boxes (class colour, label and score; below ``min_score`` left out)
    and, when given, true boxes (white, thin)."""
    import cv2

    image = np.ascontiguousarray(image.copy())
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if truth is not None:
        for b in truth[0]:
            cv2.rectangle(image, (int(b[0]), int(b[1])), (int(round(b[2])), int(round(b[3]))), (255, 255, 255), 1)
    for b, s, c in zip(*found[:3]):
        if s < min_score:
            continue
        colour = COLOURS[int(c) % len(COLOURS)]
        cv2.rectangle(image, (int(b[0]), int(b[1])), (int(round(b[2])), int(round(b[3]))), colour, 1)
        cv2.putText(image, f"{classes[int(c)]} {s:.2f}", (int(b[0]), max(8, int(b[1]) - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)
    return image


def _grid(truth: Any, paths: list[Path], ids: list[str], found: list[Found | None], classes: list[str], path: Path,
          split: str, limit: int = 16) -> Path:
    """The first ``limit`` images of the split with predicted boxes (colour, score >= 0.25) and true ones (white)."""
    from datakit import plots
    from datakit.data import read_image
    from datakit.tasks.boxdata import xywh_to_xyxy

    ann = truth.manifest.annotations
    index = {name: i for i, name in enumerate(classes)}
    pictures, titles = [], []
    for image_id, file, f in list(zip(ids, paths, found))[:limit]:
        if f is None:
            continue
        rows = ann[ann["image_id"].astype(str) == image_id].dropna(subset=["bbox_w"])
        true = (xywh_to_xyxy(rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(float)), np.ones(len(rows)),
                rows["category"].astype(str).map(index).fillna(-1).to_numpy(np.int64))
        pictures.append(draw_boxes(read_image(file, 3), f, classes, truth=true))
        titles.append(f"{Path(str(file)).name}: {int((f[1] >= 0.25).sum())} found, {len(rows)} true")
    return plots.image_grid(pictures, titles, path, title=f"{split}: predicted boxes (colour) and true boxes (white)")
