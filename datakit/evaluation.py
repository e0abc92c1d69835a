"""`datakit eval`: how good a trained classifier is on a split, by scikit-learn's metrics.

Writes, next to the run (``RUN/eval-SPLIT/``): ``metrics.json``, ``confusion_matrix.csv`` and
``.png``, ``misclassified.png`` (the most confident mistakes) and ``predictions.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from datakit.console import progress_bar
from datakit.atomic import write_json
from datakit.data import decode_all, labelled_images
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError
from datakit.inference import LoadedRun, load_run
from datakit.tasks.classification import classification_metrics  # noqa: F401 - the evaluation API
from datakit.manifest import SPLITS, load_manifest
from datakit.manifest_header import check_output_folder, takes_allow_outside

EVAL_SPLITS = (*SPLITS, "all")


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
        split_of = RunDir(loaded.run_dir).split_of()
        chosen = rows[rows["id"].astype(str).map(split_of) == split]
        source = "the run's splits.csv"
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


@takes_allow_outside
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
    if output is not None and (manifest or loaded.info.get("manifest")):
        check_output_folder(output, "-o", manifest or loaded.info["manifest"])
    if hasattr(loaded.task, "segment"):  # semantic segmentation: class maps scored by datakit.metrics
        from datakit.tasks.segrun import evaluate_run as evaluate_segmentation

        return evaluate_segmentation(loaded, manifest, split, output, batch_size, show_progress)
    if hasattr(loaded.task, "detections"):  # a box task (localization, detection): scored by datakit.metrics
        from datakit.tasks.boxrun import evaluate_run

        return evaluate_run(loaded, manifest, split, output, batch_size, show_progress)
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
    out_dir = Path(output) if output else RunDir(loaded.run_dir or loaded.checkpoint.parent).eval_dir(split)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the task's metrics (bare names at the top level) and artefacts (confusion matrix, mistakes, ...)
    metrics, files = loaded.task.eval_artefacts(rows, images, probabilities, loaded.classes, out_dir, split,
                                                max_examples)
    metrics.update({
        "task": loaded.task.name, "split": split, "split_source": source, "checkpoint": str(loaded.checkpoint),
        "epoch": loaded.epoch, "run": str(loaded.run_dir or loaded.checkpoint), "run_source": loaded.source,
        "manifest": str(manifest), "classes": loaded.classes, "skipped": skipped,
        "files": {"metrics.json": str(out_dir / "metrics.json"), **files},
    })
    write_json(out_dir / "metrics.json", metrics, default=None)
    return metrics
