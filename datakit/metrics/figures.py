"""PNG and CSV files of an evaluation: precision-recall curves per class, confusion matrices,
per-class table and worst images."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from datakit import plots


def pr_curves(result: Any, names: dict[int, str], path: Path, title: str) -> Path:
    """Per-class interpolated precision at the 101 recall points (IoU .50 and .75, all areas,
    the largest maxDets), the mean over classes in bold; classes without ground truth left out."""
    from matplotlib.figure import Figure

    recall = result.recall_thresholds
    fig = Figure(figsize=(11, 5), layout="constrained")
    for panel, iou in enumerate((0.5, 0.75)):
        ax = fig.add_subplot(1, 2, panel + 1)
        t = int(np.flatnonzero(np.isclose(result.iou_thresholds, iou))[0])
        curves = []
        for k, cid in enumerate(result.category_ids):
            p = result.precision[t, :, k, 0, -1]
            if (p < 0).all():
                continue
            curves.append(p)
            ap = float(p.mean())
            ax.plot(recall, p, linewidth=1, label=f"{names.get(cid, cid)} {ap:.3f}")
        if curves:
            mean = np.mean(curves, axis=0)
            ax.plot(recall, mean, color="black", linewidth=3, label=f"all classes {mean.mean():.3f} mAP@{iou:.2f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"IoU {iou:.2f}")
        if len(curves) <= 20:
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    return plots._save(fig, path)


def write_all(result: dict[str, Any], extras: dict[str, Any], out_dir: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    names = extras.get("names", {})
    for iou_type, label in (("bbox", "box"), ("segm", "mask")):
        if iou_type not in extras:
            continue
        name = "pr_curves.png" if iou_type == "bbox" else "mask_pr_curves.png"
        files[name] = str(pr_curves(extras[iou_type], names, out_dir / name,
                                    f"{label} precision-recall per class ({result['images']} images)"))
        table = out_dir / ("per_class.csv" if iou_type == "bbox" else "mask_per_class.csv")
        rows = result[iou_type]["per_class"]
        with open(table, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["class", "category_id", "ground_truth", "detections", "ap", "ap50", "ap75", "ar"])
            for cls, r in rows.items():
                writer.writerow([cls, r["category_id"], r["ground_truth"], r["detections"],
                                 *("n/a" if r[k] is None else f"{r[k]:.6f}" for k in ("ap", "ap50", "ap75", "ar"))])
        files[table.name] = str(table)
    if "confusion_matrix" in result:
        cm = result["confusion_matrix"]
        matrix = np.asarray(cm["matrix"])
        if cm.get("rows") == "predicted":
            matrix = matrix.T  # plots.confusion_matrix draws rows = true class
        title = cm.get("title") or (f"detections score ≥ {cm['conf']}, IoU > {cm['iou']}; background = missed / false"
                                    if "conf" in cm else "pixels")
        files["confusion_matrix.png"] = str(plots.confusion_matrix(matrix, cm["labels"], out_dir / "confusion_matrix.png",
                                                                   title=title))
    if result.get("worst_images"):
        path = out_dir / "worst_images.csv"
        keys = list(result["worst_images"][0])
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(result["worst_images"])
        files["worst_images.csv"] = str(path)
    return files
