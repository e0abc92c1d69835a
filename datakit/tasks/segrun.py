"""A trained semantic segmentation run at work: class maps for image files in their own pixels,
``predict``'s mask PNGs and overlays, ``eval`` on a split (scored by ``datakit.metrics.segmentation``),
and the figures a run leaves: overlay grids (image, true mask, predicted mask) and per-class IoU bars.

Predictions are made at the model's input size and mapped back onto each original image: the
class probabilities are resized bilinearly (the inverse of ``data.resize``: a letterbox's padding
is cut away first; ``crop`` cannot see the cut borders, which take the nearest predicted class),
then the most probable class is taken per pixel. Mask PNGs hold category ids (background 0).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from datakit.errors import DatakitError
from datakit.formats.base import flat_names
from datakit.tasks.filebatches import batches_of_files
from datakit.tasks.maskdata import IGNORE, load_pair


def to_original(probabilities: torch.Tensor, h: int, w: int, height: int, width: int, policy: str) -> np.ndarray:
    """Class indices (h x w, uint8) on the original image from K x height x width probabilities."""
    from datakit.augmentation.resize import scaled_size

    out_h, out_w = scaled_size(h, w, height, width, policy)
    p = probabilities.unsqueeze(0)
    if policy == "letterbox":  # PadIfNeeded centres the image: cut the padding away
        top, left = (height - out_h) // 2, (width - out_w) // 2
        p = p[..., top:top + out_h, left:left + out_w]
    elif policy == "crop":  # the centre window of the scaled image: pad the cut borders by replication
        top, left = (out_h - height) // 2, (out_w - width) // 2
        p = F.pad(p, (left, out_w - width - left, top, out_h - height - top), mode="replicate")
    if p.shape[-2:] != (h, w):
        p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
    return p[0].argmax(0).to(torch.uint8).cpu().numpy()


def segment_files(loaded: Any, paths: Sequence[Path], batch_size: int = 32,
                  on_image: Callable[[int], None] | None = None) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Class-index maps in each file's own pixels; a file that fails gets its error instead."""
    pre = loaded.preprocess
    found: list[np.ndarray | None] = [None] * len(paths)
    errors: list[str | None] = [None] * len(paths)
    for good, batch, shapes in batches_of_files(paths, batch_size, lambda path: load_pair(path, pre), errors, on_image):
        with torch.inference_mode():
            probabilities = loaded.task.segment(loaded.model, pre.to_tensor(batch).to(loaded.device))
        for i, (h, w), p in zip(good, shapes, probabilities):
            found[i] = to_original(p, h, w, pre.height, pre.width, pre.resize)
    return found, errors


def to_values(indices: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Class indices -> the classes' pixel values (category ids); 255 stays ignore."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    table[:len(values)] = np.asarray(values, dtype=np.uint8)
    return table[indices]


# ---------------------------------------------------------------------------------------------
# pictures


# what the first VOC palette colours look like, for the overlays' legend
VOC_NAMES = ("black", "maroon", "green", "olive", "navy", "purple", "teal", "grey", "dark brown", "red",
             "moss green", "orange", "indigo", "pink", "slate", "rose")


def colours(count: int) -> np.ndarray:
    from datakit.geometry import voc_colormap

    return voc_colormap()[:max(count, 1)]


def overlay(image: np.ndarray, indices: np.ndarray, background: int | None = 0, alpha: float = 0.55) -> np.ndarray:
    """RGB image with each class painted in its colour (VOC palette by class index); the background
    class and ignore pixels are left as they are (ignore gets a white tint)."""
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    out = rgb.astype(np.float32)
    palette = colours(256).astype(np.float32)
    paint = (indices != IGNORE) if background is None else (indices != IGNORE) & (indices != background)
    out[paint] = (1 - alpha) * out[paint] + alpha * palette[indices[paint].astype(np.int64)]
    ignore = indices == IGNORE
    out[ignore] = 0.5 * out[ignore] + 127.5
    return out.clip(0, 255).astype(np.uint8)


def image_iou(true: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """mIoU of one image (classes present in its truth or prediction; ignore pixels left out)."""
    keep = true != IGNORE
    t, p = true[keep].astype(np.int64), pred[keep].astype(np.int64)
    ious = []
    for k in np.union1d(np.unique(t), np.unique(p)):
        union = np.sum((t == k) | (p == k))
        ious.append(np.sum((t == k) & (p == k)) / union)
    return float(np.mean(ious)) if ious else float("nan")


def overlay_grid(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                 names: Sequence[str], classes: list[str], path: Path, title: str) -> Path:
    """Image, true mask and predicted mask side by side for each image (two images per row)."""
    from datakit import plots

    background = classes.index("background") if "background" in classes else None
    pictures, captions = [], []
    for image, true, pred, name in zip(images, truths, preds, names):
        pictures += [image if image.shape[2] == 3 else np.repeat(image, 3, axis=2),
                     overlay(image, true, background), overlay(image, pred, background)]
        captions += [name, "true", f"predicted (mIoU {image_iou(true, pred, len(classes)):.2f})"]
    legend = ", ".join(f"{c} ({VOC_NAMES[k] if k < len(VOC_NAMES) else f'VOC colour {k}'})"
                       for k, c in enumerate(classes) if k != background)
    return plots.image_grid(pictures, captions, path, title=f"{title}\n{legend}")


def class_iou_bars(per_class: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """One bar per class (background included): its IoU, the mIoU as a line."""
    from matplotlib.figure import Figure

    from datakit.plots import _save

    names = list(per_class)
    values = [per_class[n]["iou"] if per_class[n]["iou"] is not None else 0.0 for n in names]
    fig = Figure(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    palette = colours(len(names)) / 255.0
    bars = ax.bar(names, values, color=[tuple(c) if n != "background" else (0.6, 0.6, 0.6)
                                        for n, c in zip(names, palette)], edgecolor="black", linewidth=0.5)
    for bar, name, value in zip(bars, names, values):
        label = "n/a" if per_class[name]["iou"] is None else f"{value:.3f}"
        ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, label, ha="center", va="bottom", fontsize=8)
    present = [v for n, v in zip(names, values) if per_class[n]["iou"] is not None]
    if present:
        ax.axhline(float(np.mean(present)), color="black", linestyle="--", linewidth=1,
                   label=f"mIoU {np.mean(present):.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _save(fig, path)


def run_figures(model: torch.nn.Module, task: Any, dataset: Any, evaluator: Any, classes: list[str], out_dir: Path,
                device: torch.device, split: str, limit: int = 8) -> dict[str, str]:
    """At the end of training: ``overlays.png`` (the first images of ``split``, at the model's input size)
    and ``class_iou.png`` (per-class IoU over the whole split, from the task's ``evaluator``)."""
    shown: list[np.ndarray] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), 64):
            x, y = dataset.__getitems__(list(range(start, min(start + 64, len(dataset)))))
            pred = task.segment(model, x.to(device)).argmax(1).to(torch.uint8).cpu()
            evaluator.update(pred, y)
            if len(shown) < limit:
                shown += list(pred.numpy()[:limit - len(shown)])
    count = len(shown)
    files = {"overlays.png": str(overlay_grid(dataset.images[:count], dataset.masks[:count], shown,
                                              [f"{split} {i + 1}" for i in range(count)], classes,
                                              out_dir / "overlays.png", f"{split}: image, true mask, predicted mask"))}
    details = evaluator.details()
    files["class_iou.png"] = str(class_iou_bars(details["per_class"], out_dir / "class_iou.png",
                                                f"{split}: IoU per class ({len(dataset)} images, input size)"))
    return files


# ---------------------------------------------------------------------------------------------
# eval and predict


def evaluate_run(loaded: Any, manifest: str | os.PathLike[str] | None, split: str, output: Any,
                 batch_size: int, show_progress: bool) -> dict[str, Any]:
    """``datakit eval RUN`` for semantic segmentation: class maps for the split's images in their own
    pixels, scored against the manifest's (PNG or rasterized) class maps."""
    from datakit.atomic import write_json
    from datakit.console import progress_bar
    from datakit.engine.rundir import RunDir
    from datakit.geometry import write_label_png
    from datakit.manifest import load_manifest
    from datakit.metrics.segmentation import confusion, metrics_from_confusion
    from datakit.tasks import maskdata
    from datakit.data import read_image, usable_images

    if manifest is None:
        manifest = loaded.info.get("manifest")
        if not manifest:
            raise DatakitError("no manifest recorded with this checkpoint; pass --manifest")
    data = load_manifest(manifest)
    names, values = maskdata.class_table(data)
    if names != list(loaded.classes):
        raise DatakitError(f"{data.location}: its class table ({', '.join(names)}) is not the run's classes "
                           f"({', '.join(loaded.classes)})")
    notes: list[str] = []
    rows = maskdata.mask_rows(data, usable_images(data, str(data.location), notes), notes)
    source = "all images with masks"
    if split != "all":
        recorded = RunDir(loaded.run_dir).splits if loaded.run_dir is not None else None
        same = str(data.location) == str(loaded.info.get("manifest"))
        if recorded is not None and recorded.is_file() and (same or rows["split"].isna().all()):
            split_of = RunDir(loaded.run_dir).split_of()
            chosen = rows[rows["id"].astype(str).map(split_of) == split]
            source = "the run's splits.csv"
        elif rows["split"].notna().any():
            chosen, source = rows[rows["split"] == split], "the manifest"
        else:
            raise DatakitError(f"{data.location}: the manifest has no splits and the run recorded none for it; "
                               "use --split all")
        rows = chosen
    if rows.empty:
        raise DatakitError(f"{data.location}: split '{split}' has no usable images with masks (by {source})")
    rows = rows.sort_values("id", kind="stable").reset_index(drop=True)
    root = data.root()
    paths = [root / p for p in rows["path"].astype(str)]
    with progress_bar(f"Evaluating on {split}", 2 * len(paths), show_progress) as advance:
        truths, _, _ = maskdata.class_maps(data, rows, names, values, on_image=lambda n: advance(n))
        found, errors = segment_files(loaded, paths, min(batch_size, 64), on_image=lambda n: advance(n))
    failed = [(p, e) for p, e in zip(paths, errors) if e is not None]
    skipped = [{"count": len(failed), "problem": "image(s) could not be decoded and are not scored",
                "examples": [f"{p.name}: {e}" for p, e in failed[:3]]}] if failed else []
    ids = rows["id"].astype(str).tolist()
    pairs = [(truths[i], f) for i, f in zip(ids, found) if f is not None]
    if not pairs:
        raise DatakitError(f"no image of split '{split}' could be decoded (first: {failed[0][1]})")
    matrix = confusion(pairs, list(range(len(names))))
    found_metrics = metrics_from_confusion(matrix, names)
    out_dir = Path(output) if output else RunDir(loaded.run_dir or loaded.checkpoint.parent).eval_dir(split)
    out_dir.mkdir(parents=True, exist_ok=True)
    mask_dir = out_dir / "masks"
    # images sharing a stem (a/x.png, b/x.png) overwrote each other's mask
    files_of = flat_names(rows["path"].astype(str).tolist())
    for relative, f in zip(rows["path"].astype(str), found):
        if f is not None:
            write_label_png(mask_dir / f"{files_of[relative]}.png", to_values(f, values))
    shown = [(i, p, f) for i, (p, f) in enumerate(zip(paths, found)) if f is not None][:8]
    files = {
        "overlays.png": str(overlay_grid([read_image(p, 3) for _, p, _ in shown], [truths[ids[i]] for i, _, _ in shown],
                                         [f for _, _, f in shown], [p.name for _, p, _ in shown], names,
                                         out_dir / "overlays.png", f"{split}: image, true mask, predicted mask")),
        "class_iou.png": str(class_iou_bars(found_metrics["per_class"], out_dir / "class_iou.png",
                                            f"{split}: IoU per class ({len(pairs)} images, mIoU "
                                            f"{found_metrics['miou'] or 0:.3f})")),
        "masks/": str(mask_dir), "metrics.json": str(out_dir / "metrics.json"),
    }
    metrics = {k: found_metrics[k] for k in ("miou", "dice", "pixel_accuracy")}
    result = {
        "task": loaded.task.name, **metrics, "metrics": metrics,
        "na": {k: "no scored pixels" for k, v in metrics.items() if v is None}, "per_class": found_metrics["per_class"],
        "class_values": dict(zip(names, values)),
        "protocol": {"text": f"classes = {', '.join(f'{n} ({v})' for n, v in zip(names, values))}; pixel value "
                             f"{IGNORE} ignored; mIoU and Dice are means over classes present in truth or "
                             "predictions, background included; scored in each image's own pixels"},
        "confusion_matrix": {"labels": names, "rows": "true", "columns": "predicted",
                             "matrix": matrix[:, :-1].tolist()},
        "split": split, "split_source": source, "checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch,
        "manifest": str(data.location), "classes": list(loaded.classes), "images": len(pairs),
        "predictions": str(mask_dir), "predictions_format": "mask PNGs of category ids",
        "scored_pixels": int(matrix.sum()), "skipped": skipped, "notes": notes, "output": str(out_dir),
        "run": str(loaded.run_dir or loaded.checkpoint), "run_source": loaded.source, "files": files,
    }
    write_json(out_dir / "metrics.json", result, default=None)
    return result


def predict_files(loaded: Any, paths: Sequence[Path], names: Sequence[str], output: Any, draw: bool,
                  batch_size: int, show_progress: bool) -> pd.DataFrame:
    """``predict`` for a segmentation run: one row per image (``path``, ``classes`` present with their
    share of the pixels, ``mask`` written, ``error``); ``output`` gets ``masks/NAME.png`` (category
    ids, the image's own size) and, with ``draw``, ``draw/NAME.png`` (the image with the classes painted)."""
    import cv2

    from datakit.console import progress_bar
    from datakit.data import read_image
    from datakit.geometry import write_label_png

    if draw and output is None:
        raise DatakitError("--draw writes overlays into the -o/--output folder; give one")
    values = loaded.info.get("category_ids") or list(range(len(loaded.classes)))
    with progress_bar("Predicting", len(paths), show_progress) as advance:
        found, errors = segment_files(loaded, paths, min(batch_size, 64), on_image=advance)
    out = Path(output) if output is not None else None
    table: dict[str, list[Any]] = {"path": [], "classes": [], "mask": [], "error": []}
    background = loaded.classes.index("background") if "background" in loaded.classes else None
    files_of = flat_names(list(names))  # the stem, or the path flattened where stems collide
    for path, name, f, error in zip(paths, names, found, errors):
        share = ""
        target = None
        if f is not None:
            counts = np.bincount(f.ravel(), minlength=len(loaded.classes)) / f.size
            share = "; ".join(f"{loaded.classes[k]} {counts[k]:.3f}" for k in np.argsort(-counts)
                              if counts[k] > 0 and k != background)
            if out is not None:
                flat = f"{files_of[name]}.png"
                target = out / "masks" / flat
                write_label_png(target, to_values(f, values))
                if draw:
                    (out / "draw").mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out / "draw" / flat), overlay(read_image(path, 3), f, background)[:, :, ::-1])
        for key, value in zip(table, (str(path), share, None if target is None else str(target), error)):
            table[key].append(value)
    frame = pd.DataFrame(table)
    for column in ("classes", "mask", "error"):
        frame[column] = frame[column].astype("string")
    return frame
