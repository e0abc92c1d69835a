"""`datakit eval`: how good a trained classifier is on a split, by scikit-learn's metrics.

Writes, next to the run (``RUN/eval-SPLIT/``): ``metrics.json``, ``confusion_matrix.csv`` and
``.png``, ``misclassified.png`` (the most confident mistakes) and ``predictions.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from datakit.console import progress_bar
from datakit.atomic import write_json
from datakit.data import decode_all, labelled_images
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError
from datakit.inference import LoadedRun, load_run
from datakit.manifest import SPLITS, load_manifest

EVAL_SPLITS = (*SPLITS, "all")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray | None,
                           classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy; precision, recall, F1 per class, macro and weighted; confusion matrix; ROC-AUC."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

    labels = list(range(len(classes)))
    per_class = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result: dict[str, Any] = {
        "images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
                   "f1": float(per_class[2][i]), "support": int(per_class[3][i])}
            for i, name in enumerate(classes)
        },
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        result[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["roc_auc"] = None
    result["roc_auc_note"] = None
    present = np.unique(y_true)
    if probabilities is not None:
        if len(classes) == 2:
            if len(present) == 2:
                result["roc_auc"] = float(roc_auc_score(y_true, probabilities[:, 1]))
                result["roc_auc_note"] = f"binary, positive class '{classes[1]}'"
            else:
                result["roc_auc_note"] = "undefined: the split holds only one class"
        elif len(present) == len(classes):
            result["roc_auc"] = float(roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro",
                                                    labels=labels))
            result["roc_auc_note"] = "one-vs-rest, macro average"
        else:
            result["roc_auc_note"] = "undefined: not every class occurs in the split"
    return result


def _select_rows(loaded: LoadedRun, manifest_path: Path, split: str) -> tuple[pd.DataFrame, str]:
    """Labelled usable rows of the split, and where the split assignment came from."""
    manifest = load_manifest(manifest_path)
    rows, _ = labelled_images(manifest, str(manifest.location))
    unknown = sorted(set(rows["label"].astype(str)) - set(loaded.classes))
    if unknown:
        raise DatakitError(f"{manifest.location}: label(s) {', '.join(repr(u) for u in unknown)} are not classes "
                           f"of this model (classes: {', '.join(loaded.classes)})")
    rows = rows.assign(root=str(manifest.root()))
    if split == "all":
        return rows, "all labelled images"
    recorded = RunDir(loaded.run_dir).splits if loaded.run_dir is not None else None
    same_manifest = str(manifest.location) == str(loaded.info.get("manifest"))
    has_splits = rows["split"].notna().any()
    if recorded is not None and recorded.is_file() and (same_manifest or not has_splits):
        # the exact assignment training used (generated or completed splits included)
        table = RunDir(loaded.run_dir).read_splits()
        split_of = dict(zip(table["id"], table["split"]))
        chosen = rows[rows["id"].astype(str).map(split_of) == split]
        source = f"the run's splits.csv"
    elif has_splits:
        chosen = rows[rows["split"] == split]
        source = "the manifest"
    else:
        raise DatakitError(f"{manifest.location}: the manifest has no splits and the run recorded none for it; "
                           "use --split all")
    if chosen.empty:
        raise DatakitError(f"{manifest.location}: split '{split}' has no labelled usable images (by {source}); "
                           f"choose another --split ({', '.join(EVAL_SPLITS)})")
    return chosen, source


def evaluate(
    run: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    split: str | None = None,
    *,
    checkpoint: str = "best",
    output: str | os.PathLike[str] | None = None,
    batch_size: int = 256,
    max_examples: int = 36,
    show_progress: bool = True,
    predictions: str | os.PathLike[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Score a run's checkpoint on a split of a manifest (default: the manifest it trained on), or,
    with ``predictions``, a predictions file against ``manifest`` (``datakit.metrics.scoring``:
    ``task``, ``max_dets``, ``lenient``, ``plots`` options)."""
    from datakit import plots

    if predictions is not None:
        from datakit.metrics.scoring import evaluate_predictions

        if run is not None:
            raise DatakitError("give either a run or predictions, not both")
        if manifest is None:
            raise DatakitError("predictions need a manifest: the ground truth to score against")
        return evaluate_predictions(predictions, manifest, split=split, output=output, **options)
    if run is None:
        raise DatakitError("give a run directory to evaluate, or predictions and a manifest")
    if options:
        raise DatakitError(f"option(s) {', '.join(sorted(options))} apply to predictions only")
    split = split or "test"

    if split not in EVAL_SPLITS:
        raise DatakitError(f"unknown split {split!r}; choose one of: {', '.join(EVAL_SPLITS)}")
    loaded = load_run(run, checkpoint)
    if manifest is None:
        manifest = loaded.info.get("manifest")
        if not manifest:
            raise DatakitError(f"{run}: no manifest recorded with this checkpoint; pass --manifest")
    rows, source = _select_rows(loaded, Path(manifest), split)
    paths = [Path(root) / p for root, p in zip(rows["root"], rows["path"])]
    failures: dict[int, str] = {}
    with progress_bar(f"Evaluating on {split}", 2 * len(paths), show_progress) as advance:
        images = decode_all(paths, loaded.preprocess, on_batch=advance, failures=failures)
        skipped = [{"path": str(paths[i]), "reason": failures[i]} for i in sorted(failures)]
        if failures:  # scored without them; counted and named in the result
            keep = [i for i in range(len(paths)) if i not in failures]
            images, rows, paths = images[keep], rows.iloc[keep].reset_index(drop=True), [paths[i] for i in keep]
            if not keep:
                raise DatakitError(f"no image of split '{split}' could be decoded (first: {failures[min(failures)]})")
        probabilities = loaded.probabilities(images, batch_size, on_batch=advance)
    target_of = {name: i for i, name in enumerate(loaded.classes)}
    y_true = rows["label"].astype(str).map(target_of).to_numpy(dtype=np.int64)
    y_pred = probabilities.argmax(1)
    metrics = classification_metrics(y_true, y_pred, probabilities, loaded.classes)

    out_dir = Path(output) if output else RunDir(loaded.run_dir or loaded.checkpoint.parent).eval_dir(split)
    out_dir.mkdir(parents=True, exist_ok=True)
    matrix = np.array(metrics["confusion_matrix"])
    pd.DataFrame(matrix, index=pd.Index(loaded.classes, name="true"), columns=loaded.classes).to_csv(
        out_dir / "confusion_matrix.csv")
    plots.confusion_matrix(matrix, loaded.classes, out_dir / "confusion_matrix.png",
                           title=f"{split}: accuracy {metrics['accuracy']:.4f} ({len(y_true)} images)")
    confidence = probabilities[np.arange(len(y_pred)), y_pred]
    predictions = pd.DataFrame({
        "id": rows["id"].astype(str).to_numpy(), "path": rows["path"].astype(str).to_numpy(),
        "label": rows["label"].astype(str).to_numpy(), "predicted": [loaded.classes[i] for i in y_pred],
        "probability": confidence, "correct": y_true == y_pred,
    })
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    wrong = np.flatnonzero(y_true != y_pred)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:max_examples]
    plots.image_grid(
        [images[i] for i in wrong],
        [f"{rows['path'].iloc[i].rsplit('/', 1)[-1]}\n{loaded.classes[y_true[i]]} -> {loaded.classes[y_pred[i]]}"
         f" ({confidence[i]:.2f})" for i in wrong],
        out_dir / "misclassified.png",
        title=f"{split}: {int((y_true != y_pred).sum())} misclassified, most confident first",
    )
    metrics.update({
        "task": loaded.task.name, "macro_f1": metrics["macro"]["f1"],
        "split": split, "split_source": source, "checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch,
        "run": str(loaded.run_dir or loaded.checkpoint), "run_source": loaded.source,
        "manifest": str(manifest), "classes": loaded.classes, "misclassified": int((y_true != y_pred).sum()),
        "skipped": skipped,
        "files": {name: str(out_dir / name) for name in (
            "metrics.json", "confusion_matrix.csv", "confusion_matrix.png", "misclassified.png", "predictions.csv")},
    })
    write_json(out_dir / "metrics.json", metrics, default=None)
    return metrics
