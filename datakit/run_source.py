"""Which training run a folder names: a run itself, a sweep's best trial, or a pipeline's last model.

``datakit eval`` and ``datakit predict`` take any of the three, so the folder a person has in hand
(the sweep they ran, the pipeline output) is enough; what was chosen is said in one line.

- a run directory (``run.json`` / ``checkpoints/``) or a checkpoint file: itself;
- a sweep directory (``sweep.json``): the best trial in ``best.json`` (chosen on validation);
- a pipeline output (``pipeline.json``): the run of its last completed ``train`` or ``sweep`` step
  (for a sweep step, that sweep's best trial).

Paths recorded inside a sweep or pipeline are read relative to where the folder is now, so a
moved or copied folder still resolves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError

MODEL_STEPS = ("train", "sweep")


@dataclass
class FoundRun:
    path: Path  # a run directory or a checkpoint file
    source: str | None = None  # how a sweep or pipeline folder led to it; None when given directly


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatakitError(f"{path}: cannot be read ({exc})") from None


def _is_run(folder: Path) -> bool:
    from datakit.engine.rundir import RunDir

    run = RunDir(folder)
    return run.is_run() or run.checkpoints.is_dir()


def _rebase(recorded: str, old_root: str | None, new_root: Path) -> Path:
    """A path recorded under ``old_root``, read under ``new_root`` where the folder is now."""
    path = Path(recorded)
    if old_root:
        try:
            return new_root / path.relative_to(Path(old_root))
        except ValueError:
            pass
    return path


def best_trial(sweep_dir: Path) -> FoundRun:
    best_file = sweep_dir / "best.json"
    if not best_file.is_file():
        raise DatakitError(f"{sweep_dir}: this sweep has no completed trial yet (no best.json); "
                           "see results.csv, or pass one trial's folder (trials/trial-NNNN)")
    best = _read_json(best_file)
    try:
        trial = int(best["trial"])
    except (KeyError, TypeError, ValueError):
        raise DatakitError(f"{best_file}: no trial number recorded") from None
    run = sweep_dir / "trials" / f"trial-{trial:04d}"
    if not run.is_dir():  # trials written elsewhere (an absolute --output given to another worker)
        run = Path(str(best.get("run_dir", run)))
    value = best.get("value")
    metric = f", {best.get('metric')} {value:.4f}" if isinstance(value, (int, float)) else ""
    return FoundRun(run, f"sweep {sweep_dir}: best trial {trial}{metric} (chosen on validation) -> {run}")


def pipeline_run(folder: Path) -> FoundRun:
    record = _read_json(folder / "pipeline.json")
    steps = [s for s in record.get("steps", []) if isinstance(s, dict)]
    done = [s for s in steps if s.get("step") in MODEL_STEPS and s.get("status") == "completed"
            and isinstance(s.get("results"), dict)]
    if not done:
        raise DatakitError(f"{folder}: this pipeline has no completed train or sweep step to take a model from")
    step = done[-1]
    results, old_root = step["results"], record.get("output")
    where = f"pipeline {folder}: step '{step.get('id', step['step'])}'"
    if step["step"] == "sweep":
        sweep_dir = _rebase(str(results.get("output", "")), old_root, folder)
        found = best_trial(sweep_dir)
        return FoundRun(found.path, f"{where}, {found.source}")
    run = _rebase(str(results.get("run", "")), old_root, folder)
    return FoundRun(run, f"{where} -> {run}")


def find_run(value: str | os.PathLike[str]) -> FoundRun:
    """The run directory (or checkpoint file) ``value`` names, and how, for a sweep or pipeline folder."""
    path = Path(value)
    if not path.is_dir() or _is_run(path):
        return FoundRun(path)
    if (path / "sweep.json").is_file():
        return best_trial(path)
    if (path / "pipeline.json").is_file():
        return pipeline_run(path)
    return FoundRun(path)
