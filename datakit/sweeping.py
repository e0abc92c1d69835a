"""`datakit sweep`: many training runs over a search space, searched by Optuna, ranked on validation.

A sweep directory holds::

    sweep.json            manifest, storage URL, study name, sampler, metric (what resuming reuses)
    space.yaml            the checked search space, base config included
    sweep.db              Optuna's SQLite storage (unless --storage names another database)
    trials/trial-NNNN/    one training run directory per trial
    results.csv/.parquet  one row per trial: state, every searched key, val/test accuracy, epochs,
                          seconds, parameter count, run directory, error
    best.json             the best trial by the validation metric (ties: TIE_BREAK), with its full config
    sweep.png             the metric per trial, and against each searched key

Every trial's state lives in the Optuna storage, so a sweep that was interrupted continues where it
stopped when run again, and several processes (or machines sharing a database URL) can work on one
sweep at once. A trial whose process died is found (``sweep_storage.reclaim_dead_trials``) and its
configuration runs again; a grid combination is run to completion once, never twice. The test
accuracy of each trial is recorded but never used to choose the best one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from datakit import config as cfg
from datakit.atomic import write_atomic, write_json, write_text
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.manifest_header import check_output_folder, takes_allow_outside
from datakit.parquet_files import write_parquet
from datakit.tasks import higher_is_better
from datakit.sweep_space import SearchSpace, load_space
from datakit.sweep_storage import Reclaimed, open_storage, owner, reclaim_dead_trials, storage_url as database_url

TRIAL_COLUMNS = ("trial", "state", "value")
RESULT_COLUMNS = ("val_accuracy", "val_loss", "test_accuracy", "best_epoch", "epochs", "seconds", "parameters",
                  "origin", "run_dir", "worker", "error")
SELECTION_NOTE = "the best trial is chosen on validation only; test accuracy is reported, never used to choose"
# what decides between trials with the same metric (rank() sorts by these, in this order)
TIE_BREAK = {"val_accuracy": ("val_loss", "lower"), "val_loss": ("val_accuracy", "higher")}


def tie_break(metric: str) -> tuple[str, str]:
    """(column, "lower"/"higher") that breaks ties on ``metric``: the loss for a metric, accuracy for the loss."""
    if metric in TIE_BREAK:
        return TIE_BREAK[metric]
    return ("val_loss", "lower") if higher_is_better(metric) else ("val_accuracy", "higher")


def tie_break_note(metric: str) -> str:
    other, better = tie_break(metric)
    return f"ties on {metric} go to the {better} {other}, then to the earlier trial"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep, after the results so far were written; ``message`` says how to resume."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class SweepResult:
    output: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    table: pd.DataFrame
    best: dict[str, Any] | None
    counts: dict[str, int]
    seconds: float
    ran_here: int = 0
    params: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # trials left running by a dead process, run again
    running_elsewhere: list[str] = field(default_factory=list)  # trials other live processes still run

    note: str = SELECTION_NOTE

    @property
    def tie_break(self) -> tuple[str, str]:
        return tie_break(self.metric)

    @property
    def tie_break_note(self) -> str:
        return tie_break_note(self.metric)

    def ranked(self) -> pd.DataFrame:
        """Complete trials, best first by the validation metric."""
        return rank(self.table, self.metric)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output), "study_name": self.study_name, "storage": self.storage,
            "metric": self.metric, "direction": self.direction, "counts": self.counts, "best": self.best,
            "trials_run_by_this_process": self.ran_here, "seconds": round(self.seconds, 3), "note": SELECTION_NOTE,
            "recovered": self.recovered, "running_elsewhere": self.running_elsewhere,
            "results": json.loads(self.table.to_json(orient="records")),
        }


# ---------------------------------------------------------------------------------------------
# samplers and pruners


class _SeededPerTrial(optuna.samplers.BaseSampler):
    """Wraps a sampler so trial N always draws from seed + N.

    One process gets the same sequence on every run (reproducible); several processes on one study
    get distinct trial numbers, so they never draw the same random configuration.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._by_trial:
            self._by_trial[trial.number] = self._make(self._seed + trial.number)
        return self._by_trial[trial.number]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, distribution: Any) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        sampler = self._by_trial.pop(trial.number, None) or self._make(self._seed + trial.number)
        sampler.after_trial(study, trial, state, values)


def make_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    if space.sampler == "grid":
        # the grid sampler gives trial N grid point N, so processes never repeat one another
        return optuna.samplers.GridSampler(space.grid(), seed=space.seed)
    if space.sampler == "random":
        return _SeededPerTrial(lambda seed: optuna.samplers.RandomSampler(seed=seed), space.seed)
    startup = min(10, max(3, space.target_trials() // 3))  # random trials before TPE models the results
    return _SeededPerTrial(lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup), space.seed)


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    if space.pruner["name"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=space.pruner["startup_trials"],
                                       n_warmup_steps=space.pruner["warmup_epochs"])


# ---------------------------------------------------------------------------------------------
# one trial


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DuplicateTrial(Exception):
    """Another process started the same grid combination at the same moment; this copy stops at once."""


def _taken_by(trial: optuna.Trial) -> int | None:
    """The trial that already ran (or, started earlier, runs) this trial's grid combination, if any."""
    for other in trial.study.get_trials(deepcopy=False):
        if other.number == trial.number or other.params != trial.params:
            continue
        if other.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                other.state == TrialState.RUNNING and other.number < trial.number):
            return other.number
    return None


def count_parameters(run_dir: Path, config: cfg.TrainConfig) -> int | None:
    """Trainable parameters of the run's model, rebuilt from its recorded input shape and classes."""
    from datakit.models import build_model

    try:
        info = RunDir(run_dir).read_info()
        pre = info["preprocess"]
        recorded = RunDir(run_dir).read_config()  # with the data-aware defaults the run derived
        if recorded:
            config = cfg.from_dict(recorded)
        model = build_model(config.model, int(pre["channels"]), len(info["classes"]), (int(pre["height"]), int(pre["width"])))
    except (OSError, KeyError, ValueError, DatakitError):
        return None
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def _best_epoch_record(history: list[dict[str, float]], metric: str) -> dict[str, float] | None:
    if not history:
        return None
    pick = max if higher_is_better(metric) else min
    return pick(history, key=lambda r: r[metric])


class _Objective:
    """Trains one configuration per trial, reports each epoch for pruning, records what happened."""

    def __init__(self, manifest: Path, space: SearchSpace, trials_dir: Path, on_epoch: Callable[..., None]) -> None:
        self.manifest = manifest
        self.space = space
        self.trials_dir = trials_dir
        self.on_epoch = on_epoch

    def __call__(self, trial: optuna.Trial) -> float:
        from datakit.training import train

        started = time.perf_counter()
        run_dir = self.trials_dir / f"trial-{trial.number:04d}"
        trial.set_user_attr("owner", owner())  # lets a later process on this host see that this one died
        trial.set_user_attr("worker", _worker())
        history: list[dict[str, float]] = []
        metric = self.space.metric
        config: cfg.TrainConfig | None = None

        last_epoch: list[int] = []

        def report(record: dict[str, float]) -> None:
            history.append(record)
            trial.report(record[metric], int(record["epoch"]))
            self.on_epoch(trial.number, record)
            if not last_epoch:  # the run's own length: train.epochs may have been derived from the data
                recorded = RunDir(run_dir).read_config() or {}
                last_epoch.append(int((recorded.get("train") or {}).get("epochs") or config.train.epochs))
            # pruning after the last epoch would save nothing and only hide a finished result
            if record["epoch"] < last_epoch[0] and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {int(record['epoch'])}: {metric} "
                                         f"{record[metric]:.4f} is below the median of earlier trials")

        def record_progress() -> None:
            best = _best_epoch_record(history, metric)
            trial.set_user_attr("epochs", len(history))
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            if best is not None:
                trial.set_user_attr("val_accuracy", best.get("val_accuracy"))
                trial.set_user_attr("val_loss", best["val_loss"])
                trial.set_user_attr("best_epoch", int(best["epoch"]))
            if config is not None:
                trial.set_user_attr("parameters", count_parameters(run_dir, config))

        trial.set_user_attr("run_dir", str(run_dir))
        try:
            params = self.space.suggest(trial)
            if self.space.sampler == "grid" and (first := _taken_by(trial)) is not None:
                # Optuna's grid sampler hands out a taken combination when every one is taken (two
                # processes asking at the same moment); running it would run that combination twice
                message = (f"trial {first} already runs this combination (another process started it at "
                           "the same moment); not run twice")
                trial.set_user_attr("duplicate_of", first)
                trial.set_user_attr("run_dir", None)
                trial.set_user_attr("error", message)
                raise DuplicateTrial(message)
            config = cfg.resolve_config(self.space.base_config, params)
            result = train(self.manifest, config, run_dir, show_progress=False, callback=report)
        except optuna.TrialPruned as exc:
            record_progress()
            trial.set_user_attr("pruned_at_epoch", len(history))
            # training records any stop raised by a callback as such; a pruned trial says so
            RunDir(run_dir).update_info(drop=("error",), status="pruned", pruned_at_epoch=len(history), note=str(exc))
            raise
        except DuplicateTrial:
            raise
        except KeyboardInterrupt:
            record_progress()
            # Optuna records the trial as failed; this marks it to be run again when the sweep resumes
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted (Ctrl-C); run again on resume")
            raise
        except Exception as exc:
            record_progress()
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
            raise
        record_progress()
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr("status", result.status)
        if result.best_metric is None:
            raise DatakitError("training finished without a validation metric (no epoch completed)")
        return float(result.best_metric)


# ---------------------------------------------------------------------------------------------
# results


def _retried(trials: list[FrozenTrial]) -> set[int]:
    """Trials run again under a new number: interrupted by Ctrl-C, or their process died."""
    # Optuna's retry of a stale trial lists every earlier attempt in its retry history
    numbers = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    numbers |= {t.user_attrs.get("retry_of") for t in trials}
    return {n for n in numbers if n is not None}


def _state(trial: FrozenTrial, retried: set[int] = frozenset()) -> str:
    if trial.state == TrialState.FAIL and "duplicate_of" in trial.user_attrs:
        return "duplicate"
    if trial.state == TrialState.FAIL and (trial.user_attrs.get("interrupted") or trial.number in retried):
        return "interrupted"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
            TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}[trial.state]


def _table_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def results_table(trials: list[FrozenTrial], space: SearchSpace) -> pd.DataFrame:
    """One row per trial, in trial order; searched keys as columns named by their dotted key."""
    rows = []
    retried = _retried(trials)
    for t in sorted(trials, key=lambda t: t.number):
        attrs = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "state": _state(t, retried),
                               "value": t.value if t.state == TrialState.COMPLETE else None}
        for key in space.keys:
            row[key] = _table_value(t.params.get(key))
        for column in RESULT_COLUMNS:
            row[column] = attrs.get(column)
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, *space.keys, *RESULT_COLUMNS])
    for key in space.keys:
        kinds = {type(v) for v in table[key] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            table[key] = table[key].map(lambda v: None if v is None else str(v))  # one type per Parquet column
    for key in space.keys:
        values = [v for v in table[key] if v is not None and not (isinstance(v, float) and pd.isna(v))]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            table[key] = pd.array(table[key], dtype="Int64")  # 32, not 32.0, when a trial has no value
    for column in ("best_epoch", "epochs", "parameters"):
        table[column] = pd.array(table[column], dtype="Int64")
    for column in ("value", "val_accuracy", "val_loss", "test_accuracy", "seconds"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    for column in ("state", "origin", "run_dir", "worker", "error"):
        table[column] = table[column].astype("string")
    return table


def rank(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Complete trials, best first by the validation metric; ties go to the other validation metric
    (``TIE_BREAK``), then to the earlier trial."""
    done = table[table["state"] == "complete"]
    other, better = tie_break(metric)
    return done.sort_values(["value", other, "trial"], ascending=[not higher_is_better(metric), better == "lower", True],
                            kind="stable")


def best_summary(table: pd.DataFrame, space: SearchSpace, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    ranked = rank(table, space.metric)
    if ranked.empty:
        return None
    row = ranked.iloc[0]
    # the values as the trial used them (int, float, str, list), not as a table column holds them
    chosen = next(t for t in trials if t.number == int(row["trial"]))
    params = {p.key: p.decode(chosen.params[p.key]) if p.key in chosen.params else None for p in space.params}
    run = RunDir(str(row["run_dir"]))
    config = run.read_config()

    def plain(value: Any) -> Any:
        return None if value is None or pd.isna(value) else (value.item() if hasattr(value, "item") else value)

    return {
        "trial": int(row["trial"]), "metric": space.metric, "value": plain(row["value"]),
        "val_accuracy": plain(row["val_accuracy"]), "val_loss": plain(row["val_loss"]),
        "test_accuracy": plain(row["test_accuracy"]), "best_epoch": plain(row["best_epoch"]),
        "epochs": plain(row["epochs"]), "seconds": plain(row["seconds"]), "parameters": plain(row["parameters"]),
        "origin": plain(row["origin"]), "params": params, "run_dir": str(run.path), "best_checkpoint": str(run.best),
        "note": SELECTION_NOTE, "tie_break": tie_break_note(space.metric), "config": config,
    }


def write_results(output: Path, study: optuna.Study, space: SearchSpace,
                  plot: bool = False) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """results.csv/.parquet and best.json after every trial; sweep.png (``plot``) at the end."""
    trials = study.get_trials(deepcopy=False)
    table = results_table(trials, space)
    # several processes may write one sweep: every write is atomic, the last one wins
    write_atomic(output / "results.csv", lambda p: table.to_csv(p, index=False))
    write_atomic(output / "results.parquet", lambda p: write_parquet(table, p))
    best = best_summary(table, space, trials)
    if best is not None:
        write_json(output / "best.json", best)
    if plot and len(table):
        from datakit.plots import sweep_plot

        log_params = [p.key for p in space.params if p.log]
        title = f"sweep {output.name}: {len(table)} trials, {space.sampler} sampler"
        # the trial's value is its metric: a column of its own for the metrics results.csv has none of (val_miou)
        shown = table if space.metric in table.columns else table.assign(**{space.metric: table["value"]})
        write_atomic(output / "sweep.png", lambda tmp: sweep_plot(shown, space.metric, space.keys, tmp, title,
                                                                   log_params))
    return table, best


# ---------------------------------------------------------------------------------------------
# the sweep


def _counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Finished trials that count towards the total; interrupted and retried ones are run again,
    and a duplicate grid combination was never run."""
    retried = _retried(trials)
    return [t for t in trials if t.state.is_finished() and not t.user_attrs.get("interrupted")
            and t.number not in retried and "duplicate_of" not in t.user_attrs]


def _work_left(trials: list[FrozenTrial], target: int) -> bool:
    """Trials still to start: fewer than ``target`` finished or running, or retries waiting in the queue."""
    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    return waiting or len(_counted(trials)) + running < target


def _running_elsewhere(trials: list[FrozenTrial]) -> list[str]:
    lines = []
    for t in trials:
        if t.state == TrialState.RUNNING:
            beat = f", started {t.datetime_start:%H:%M:%S}" if t.datetime_start else ""
            lines.append(f"trial {t.number} is running in {t.user_attrs.get('worker', 'another process')}{beat}")
    return lines


def _requeue_interrupted(study: optuna.Study) -> int:
    """Queue the parameters of trials that Ctrl-C stopped, once each, so they run first."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = 0
    for t in trials:
        if t.user_attrs.get("interrupted") and t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            queued += 1
    return queued


def _queue_defaults(study: optuna.Study, space: SearchSpace, manifest: Any, task: str) -> str:
    """Queue the defaults as a new random/TPE study's first trial (``datakit.sweep_baseline``); the note to show."""
    if not space.baseline or space.sampler == "grid" or study.get_trials(deepcopy=False):
        return ""
    from datakit.sweep_baseline import ORIGIN, baseline

    queued = baseline(space, manifest, task)
    if queued.params:
        # skip_if_exists: another process that started this study at the same moment queued it already
        study.enqueue_trial(queued.params, user_attrs={"origin": ORIGIN}, skip_if_exists=True)
    return queued.note()


def _check_output(output: Path) -> dict[str, Any] | None:
    """The previous sweep.json when resuming; refuses a folder that holds something else."""
    state = output / "sweep.json"
    if state.is_file():
        try:
            return json.loads(state.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DatakitError(f"{state}: invalid JSON ({exc})") from None
    # the study's own database (and its lock, journal) alone: a sweep stopped before it wrote
    # sweep.json, or one another process is starting right now; the study's checks then apply
    own = {"sweep.db", "sweep.db.lock", "sweep.db-journal", "sweep.db-wal", "sweep.db-shm"}
    if output.exists() and (not output.is_dir() or any(entry.name not in own for entry in output.iterdir())):
        raise DatakitError(f"{output}: folder exists, is not empty and holds no sweep (no sweep.json); "
                           "choose a new folder")
    return None


def _check_identity(study: optuna.Study, space: SearchSpace, where: str) -> None:
    identity = json.loads(json.dumps(space.identity()))  # tuples -> lists, as stored
    stored = study.user_attrs.get("datakit_space")
    if stored is None:
        study.set_user_attr("datakit_space", identity)
        return
    if stored != identity:
        changed = [k for k in identity if stored.get(k) != identity[k]]
        raise DatakitError(f"{where}: study '{study.study_name}' was started with a different "
                           f"{' and '.join(changed).replace('_', ' ')}; resume with the same space and config, "
                           "or start a new sweep (another --output or --study-name)")


def _check_same_data(study: optuna.Study, manifest: Any, where: str) -> None:
    """A resumed study must train on the data it started with: trials on two data sets would be ranked
    against each other. Compared by content (image ids, hashes, classes), not by path, so workers on
    other machines, with the data mounted elsewhere, still join."""
    fingerprint = manifest_fingerprint(manifest)
    stored = study.user_attrs.get("datakit_manifest")
    if stored is None:
        study.set_user_attr("datakit_manifest", {"fingerprint": fingerprint, "path": str(manifest.location)})
        return
    if stored.get("fingerprint") != fingerprint:
        raise DatakitError(f"{where}: study '{study.study_name}' was started on other data ({stored.get('path')}); "
                           f"resume it with that manifest, or start a new sweep on {manifest.location} "
                           "(another --output or --study-name)")


def manifest_fingerprint(manifest: Any) -> str:
    """SHA-256 over the images (id, content hash, label, split, status), the objects and the class table."""
    images = manifest.images
    columns = [c for c in ("id", "sha256", "label", "split", "status") if c in images.columns]
    rows = images[columns].astype(str).sort_values("id").to_csv(index=False)
    objects = manifest.annotations
    kept = [c for c in ("id", "image_id", "category", "bbox_x", "bbox_y", "bbox_w", "bbox_h") if c in objects.columns]
    rows += objects[kept].astype(str).sort_values(kept[:1] or None).to_csv(index=False) if kept and len(objects) else ""
    classes = json.dumps(sorted((str(c["name"]), int(c["id"])) for c in manifest.categories))
    return hashlib.sha256((rows + classes).encode("utf-8")).hexdigest()


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial (and a traceback per failure); datakit prints its own one-line summaries."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _resolve_metric(space: SearchSpace, manifest: Any) -> str:
    """The task's first metric for ``metric: auto``; the metric must be one of the task's. Returns the task."""
    from datakit.tasks import AUTO, check_monitor, get_spec, resolve_task

    task, _ = resolve_task(space.base_config.task, manifest)
    if space.metric == AUTO:
        space.metric = get_spec(task).default_monitor
    check_monitor(task, space.metric, key="metric")
    space.base_config.train.monitor = space.metric
    return task


@takes_allow_outside
def sweep(
    manifest: str | os.PathLike[str],
    space: Mapping[str, Any] | str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    sampler: str | None = None,
    config: cfg.TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    console: Any = None,
    **overrides: Any,
) -> SweepResult:
    """Train one run per trial of ``space`` on ``manifest`` into ``output``; returns the ranked results.

    ``space`` is a YAML path or dict (see ``datakit.sweep_space``); ``trials`` and ``sampler``
    replace its own; ``config`` replaces its base config and ``overrides`` (dotted keys or aliases)
    are set for every trial. ``storage`` is an Optuna database URL (default: SQLite in ``output``);
    running ``sweep`` again on the same output or storage continues the study.
    """
    started = time.perf_counter()
    searched = load_space(space, config, overrides, replace={"trials": trials, "sampler": sampler})
    out = Path(output) if output is not None else Path("sweeps") / (
        Path(space).stem if isinstance(space, (str, os.PathLike)) else "sweep")
    previous = _check_output(out)
    manifest_path = Path(manifest)
    loaded = load_manifest(manifest_path)  # a missing or broken manifest fails before any trial
    if previous is None:
        check_output_folder(out, "-o", loaded)
    task = _resolve_metric(searched, loaded)
    storage_url = database_url(storage or (previous or {}).get("storage") or str(out / "sweep.db"))
    name = study_name or (previous or {}).get("study_name") or out.resolve().name
    if previous and previous.get("study_name") not in (None, name):
        # trial folders and results.csv belong to the folder: a second study would overwrite them
        raise DatakitError(f"{out}: holds the sweep of study '{previous['study_name']}'; a study named '{name}' "
                           "needs its own --output")
    out.mkdir(parents=True, exist_ok=True)

    with _quiet_optuna():
        study = optuna.create_study(storage=open_storage(storage_url), study_name=name, load_if_exists=True,
                                    direction=searched.direction, sampler=make_sampler(searched),
                                    pruner=make_pruner(searched))
        _check_identity(study, searched, str(out))
        _check_same_data(study, loaded, str(out))
        # trials whose process died (gone from this host, or no heartbeat): failed and queued again
        recovered: list[Reclaimed] = reclaim_dead_trials(study)
        state = {"manifest": str(manifest_path.resolve()), "storage": storage_url, "study_name": name,
                 "sampler": searched.sampler, "metric": searched.metric, "direction": searched.direction,
                 "trials": searched.target_trials()}
        write_json(out / "sweep.json", state, default=None)
        write_text(out / "space.yaml", yaml.safe_dump(searched.as_dict(), sort_keys=False, default_flow_style=None))
        requeued = _requeue_interrupted(study)
        queued_defaults = _queue_defaults(study, searched, loaded, task)
        target = searched.target_trials()
        existing = study.get_trials(deepcopy=False)

        from datakit.render_sweep import SweepDisplay

        display = SweepDisplay(console, show_progress, target, searched, done=len(_counted(existing)))
        ran_here = 0

        def recover() -> None:
            found = reclaim_dead_trials(study)
            recovered.extend(found)
            for item in found:
                display.note(f"[magenta]recovered:[/] {item.line()}")

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            nonlocal ran_here
            recover()  # e.g. another worker on this host was killed while this trial ran
            write_results(out, study, searched)
            if "duplicate_of" not in trial.user_attrs:
                ran_here += 1
                display.trial_done(trial, _state(trial))
            if not _work_left(study.get_trials(deepcopy=False), target):
                study.stop()  # enough trials finished or under way in this and other processes

        objective = _Objective(manifest_path, searched, out / "trials", display.epoch)
        try:
            with display:
                for item in recovered:
                    display.note(f"[magenta]recovered:[/] {item.line()}")
                if requeued:
                    display.note(f"resuming: {requeued} interrupted trial(s) queued to run again")
                if queued_defaults:
                    display.note(queued_defaults)
                if not _work_left(existing, target):
                    display.note(f"nothing to run: {target} trial(s) already finished or running")
                # Optuna's grid sampler stops a study once every combination has been tried, even when a
                # retry of a trial whose process died still waits in the queue: go on until none is left
                while _work_left(study.get_trials(deepcopy=False), target):
                    study.optimize(objective, catch=(Exception,), callbacks=[after_trial])
                    recover()
        except KeyboardInterrupt:
            write_results(out, study, searched, plot=True)
            raise SweepInterrupted(
                f"sweep interrupted; results so far in {out}/results.csv; run the same command again to "
                "resume (finished trials are kept, the interrupted one runs again)") from None
        table, best = write_results(out, study, searched, plot=True)
    counts = {state_name: int(n) for state_name, n in table["state"].value_counts().items()}
    return SweepResult(output=out, study_name=name, storage=storage_url, metric=searched.metric,
                       direction=searched.direction, table=table, best=best, counts=counts,
                       seconds=time.perf_counter() - started, ran_here=ran_here, params=searched.keys,
                       recovered=[item.line() for item in recovered],
                       running_elsewhere=_running_elsewhere(study.get_trials(deepcopy=False)))
