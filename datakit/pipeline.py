"""`datakit run PIPELINE.yaml`: steps (sample, ingest, info, split, augment, train, eval, sweep) in order.

A pipeline file::

    name: digits-cnn
    seed: 0                      # given to every step that samples, unless the step sets its own
    steps:
      - sample: {name: digits}
      - ingest: {}               # src: the images of the latest step that made some
      - train:
          config: ../configs/digits-cnn.yaml
          epochs: 20             # any other option of train/sweep is a config key
      - eval: {split: test}      # run: the latest run (train, or the best trial of a sweep)

Conventions:

- Each step writes into ``OUTPUT/<id>`` (the id is the step's name unless ``id:`` is given next to
  it, which a pipeline needs only to use one step twice).
- A step's results are available to later steps as ``${<id>.<key>}`` (e.g. ``${ingest.manifest}``,
  ``${train.run}``); ``${output}`` is the pipeline's output folder and ``${seed}`` its seed. An
  option left out takes the latest ``images``, ``manifest`` or ``run`` an earlier step produced.
- Relative input paths (``config``, ``space``, ``src``, ``labels``, ``manifest``, ``run``) are read
  relative to the pipeline file; relative outputs are placed inside the pipeline's output folder.
- ``--set ID.OPTION=VALUE`` changes one step's option (``--set train.epochs=3``), ``--set seed=1``
  the seed. The resolved pipeline is written to ``OUTPUT/pipeline.yaml`` before the first step
  and ``OUTPUT/pipeline.json`` records each step's options, results, time and status.

Adding a step is one function taking ``(ctx, **options)`` and returning a dict of results, and one
entry in ``STEPS``.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from datakit import config as cfg
from datakit.atomic import write_json
from datakit.augmentation.pipeline_step import augment_step
from datakit.errors import DatakitError
from datakit.manifest_header import takes_allow_outside

PIPELINE_KEYS = ("name", "description", "seed", "steps")
REFERENCE = re.compile(r"\$\{([^}]+)\}")
LATEST_KINDS = ("images", "manifest", "run")


class StepFailed(DatakitError):
    """A pipeline step raised; the message names the step, and the exit code is the step's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StepContext:
    """What a step function gets besides its options."""

    id: str
    output: Path  # this step's output folder (OUTPUT/<id>), not yet created
    base: Path  # the pipeline file's folder: relative input paths are read from here
    seed: int
    latest: dict[str, str]  # newest "images", "manifest" and "run" made by earlier steps
    show_progress: bool
    console: Any  # a rich Console for step summaries, or None when quiet

    def input_path(self, value: str | os.PathLike[str] | None, kind: str | None = None) -> Path:
        """An input: the given path (relative to the pipeline file) or the latest of ``kind``."""
        if value is None:
            if kind is None or kind not in self.latest:
                raise DatakitError(f"needs '{kind}' and no earlier step produced one; set it in the step")
            return Path(self.latest[kind])
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def output_path(self, value: str | os.PathLike[str] | None) -> Path:
        if value is None:
            return self.output
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.output.parent / path

    def show(self, render: Callable[[Any], None]) -> None:
        if self.console is not None:
            render(self.console)


# ---------------------------------------------------------------------------------------------
# steps: each returns its results; "images", "manifest" and "run" feed later steps' defaults


def sample_step(ctx: StepContext, name: str, output: str | None = None, seed: int | None = None,
                count: int | None = None, size: int | None = None, objects: list[int] | None = None,
                imbalance: float = 1.0, noise: float = 8.0, image_format: str = "png") -> dict[str, Any]:
    """Write a built-in data set (shapes, digits)."""
    from datakit.samples import sample

    result = sample(name, ctx.output_path(output), seed=ctx.seed if seed is None else seed, count=count, size=size,
                    objects=tuple(objects or (1, 3)), imbalance=imbalance, noise=noise, image_format=image_format,
                    show_progress=ctx.show_progress)
    from datakit.render import path_line

    ctx.show(lambda c: path_line(c, f"{result.images} images of {len(result.classes)} classes in {result.image_folder}"))
    return {"images": str(result.image_folder), "output": str(result.output), "count": result.images,
            "classes": result.classes}


def ingest_step(ctx: StepContext, src: str | None = None, output: str | None = None, labels: str | None = None,
                layout: str = "auto", format: str | None = None, workers: int = 0, verify: str = "structure",
                strict: bool = False, table_format: str = "parquet", on_invalid: str = "clip") -> dict[str, Any]:
    """A folder of images (default: the latest sampled images) -> manifest."""
    from datakit import render
    from datakit.ingest import ingest

    result = ingest(ctx.input_path(src, "images"), ctx.output_path(output),
                    labels=ctx.input_path(labels) if labels else None, layout=layout, format=format,
                    workers=workers or None, verify=verify, strict=strict, table_format=table_format,
                    on_invalid=on_invalid, show_progress=ctx.show_progress)
    summary = result.as_dict()
    ctx.show(lambda c: render.ingest_summary(c, result))
    return {"manifest": str(Path(summary["manifest"])), "count": summary["images"], "status": summary["status"]}


def info_step(ctx: StepContext, manifest: str | None = None) -> dict[str, Any]:
    """Print what a manifest holds (counts per class, split, status, format)."""
    from datakit import render
    from datakit.info import info

    path = ctx.input_path(manifest, "manifest")
    data = info(path)
    ctx.show(lambda c: render.info_tables(c, data))
    return {"manifest": str(path), "info": data}


def split_step(ctx: StepContext, manifest: str | None = None, output: str | None = None,
               ratios: Any = None, val: float | None = None, test: float | None = None, seed: int | None = None,
               group_by: Any = None, reset: bool = False) -> dict[str, Any]:
    """``datakit split`` into a copy of the manifest; ``val``/``test`` are aliases for the ratios."""
    from datakit import render
    from datakit.splitting import DEFAULT_RATIOS, split

    if ratios is None and (val is not None or test is not None):
        v = DEFAULT_RATIOS[1] if val is None else float(val)
        t = DEFAULT_RATIOS[2] if test is None else float(test)
        ratios = [1.0 - v - t, v, t]
    result = split(ctx.input_path(manifest, "manifest"), ctx.output_path(output), ratios=ratios,
                   seed=ctx.seed if seed is None else seed, group_by=group_by, reset=reset)
    ctx.show(lambda c: render.split_summary(c, result))
    return {"manifest": str(result.manifest), "splits": result.counts,
            "worst_deviation_pp": round(result.worst_deviation_pp, 3), "moves": len(result.moves)}


def _seed_unless_set(ctx: StepContext, overrides: dict[str, Any], config: Any, space: Any = None) -> None:
    """The pipeline's seed for a train or sweep step, unless the step, its config file or its space's
    ``set`` gives one: the same config file must train alike through ``datakit run`` and ``train -c``."""
    if any(cfg.resolve_key(k) == "seed" for k in overrides):
        return
    if space is not None:  # the sweep's own base config: its space's config file and `set`, as it reads them
        from datakit.sweep_space import load_space

        base = load_space(space, config).base_config
    else:
        base = cfg.resolve_config(config)
    if "seed" not in cfg.user_set_keys(base):
        overrides["seed"] = ctx.seed


def train_step(ctx: StepContext, manifest: str | None = None, config: Any = None, output: str | None = None,
               **overrides: Any) -> dict[str, Any]:
    """Train a model (any task); options other than manifest/config/output are config keys."""
    from datakit import render_training
    from datakit.training import train

    if isinstance(config, (str, os.PathLike)):
        config = ctx.input_path(config)
    _seed_unless_set(ctx, overrides, config)
    result = train(ctx.input_path(manifest, "manifest"), config, ctx.output_path(output),
                   show_progress=ctx.show_progress, **overrides)
    ctx.show(lambda c: render_training.train_summary(c, result))
    return {"run": str(result.run_dir), "task": result.task, "status": result.status, "monitor": result.monitor,
            "best_metric": result.best_metric, "best_epoch": result.best_epoch, "epochs": result.epochs_run,
            "test_accuracy": result.test_accuracy, "test_metrics": result.test_metrics,
            "seconds": round(result.seconds, 3)}


def eval_step(ctx: StepContext, run: str | None = None, manifest: str | None = None, split: str = "test",
              checkpoint: str = "best", output: str | None = None) -> dict[str, Any]:
    """Score a run (default: the latest) on a split; the report goes to RUN/eval-SPLIT unless output is set."""
    from datakit import render_training
    from datakit.evaluation import evaluate

    metrics = evaluate(ctx.input_path(run, "run"), ctx.input_path(manifest) if manifest else None, split,
                       checkpoint=checkpoint, output=ctx.output_path(output) if output else None,
                       show_progress=ctx.show_progress)
    from datakit.tasks import get_spec

    ctx.show(lambda c: render_training.eval_tables(c, metrics))
    names = get_spec(metrics.get("task") or "classification").metrics  # accuracy, macro_f1 / map, map50, ...
    return {**{m: metrics.get(m) for m in names}, "split": split, "images": metrics["images"],
            "metrics": metrics["files"]["metrics.json"]}


def sweep_step(ctx: StepContext, space: Any, manifest: str | None = None, output: str | None = None,
               storage: str | None = None, study_name: str | None = None, trials: int | None = None,
               sampler: str | None = None, config: Any = None, top: int = 10, **overrides: Any) -> dict[str, Any]:
    """A hyperparameter sweep; its best trial becomes the latest run. Other options are config keys."""
    from datakit.render_sweep import leaderboard
    from datakit.sweeping import sweep

    if isinstance(space, (str, os.PathLike)):
        space = ctx.input_path(space)
    if isinstance(config, (str, os.PathLike)):
        config = ctx.input_path(config)
    _seed_unless_set(ctx, overrides, config, space)
    result = sweep(ctx.input_path(manifest, "manifest"), space, ctx.output_path(output), storage=storage,
                   study_name=study_name, trials=trials, sampler=sampler, config=config,
                   show_progress=ctx.show_progress, **overrides)
    ctx.show(lambda c: leaderboard(c, result, top))
    if result.best is None:
        first = result.table["error"].dropna()
        raise DatakitError(f"no trial completed ({result.counts}); "
                           f"first error: {first.iloc[0] if len(first) else 'none recorded'}")
    best = result.best
    return {"output": str(result.output), "run": best["run_dir"], "best_trial": best["trial"],
            "best_params": best["params"], "best_value": best["value"], "val_accuracy": best["val_accuracy"],
            "test_accuracy": best["test_accuracy"], "counts": result.counts}


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "sample": sample_step,
    "ingest": ingest_step,
    "info": info_step,
    "split": split_step,
    "augment": augment_step,
    "train": train_step,
    "eval": eval_step,
    "sweep": sweep_step,
}


# ---------------------------------------------------------------------------------------------
# the pipeline file


@dataclass
class StepSpec:
    id: str
    name: str
    options: dict[str, Any]


@dataclass
class Pipeline:
    name: str
    seed: int
    steps: list[StepSpec]
    base: Path
    source: str | None = None
    description: str | None = None

    def as_dict(self) -> dict[str, Any]:
        steps = [{s.name: s.options, **({"id": s.id} if s.id != s.name else {})} for s in self.steps]
        return {"name": self.name, "description": self.description, "source": self.source, "seed": self.seed,
                "steps": steps}


def _closest(word: str, known: list[str] | tuple[str, ...]) -> str:
    near = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else ""


def _option_choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """(step, option) -> the values it takes, so a bad one fails before the first step, not after training."""
    from datakit.augmentation.presets import ORIENTATIONS
    from datakit.formats.base import ON_INVALID
    from datakit.imageinfo import VERIFY_MODES
    from datakit.ingest import LAYOUTS
    from datakit.manifest import SPLITS
    from datakit.manifest_header import TABLE_FORMATS
    from datakit.sweep_space import SAMPLERS

    return {("sample", "name"): ("shapes", "digits"), ("sample", "image_format"): ("png", "jpg"),
            ("ingest", "layout"): LAYOUTS, ("ingest", "verify"): VERIFY_MODES,
            ("ingest", "table_format"): TABLE_FORMATS, ("ingest", "on_invalid"): ON_INVALID,
            ("eval", "split"): (*SPLITS, "all"), ("eval", "checkpoint"): ("best", "last"),
            ("sweep", "sampler"): SAMPLERS,
            ("augment", "split"): (*SPLITS, "all"), ("augment", "orientation"): tuple(ORIENTATIONS),
            ("augment", "table_format"): TABLE_FORMATS}


def _check_train_config(where: str, options: Mapping[str, Any], base: Path) -> None:
    """A train step's config file and keys resolved as the step will (unknown keys in the file,
    values out of range), before the first step: not after the steps before it have run."""
    config = options.get("config")
    if isinstance(config, str) and _references(config):
        return
    if isinstance(config, (str, os.PathLike)):
        config = Path(config).expanduser()
        config = config if config.is_absolute() else base / config
    keys = {k: v for k, v in options.items() if k not in ("manifest", "config", "output") and not _references(v)}
    try:
        cfg.resolve_config(config, keys)
    except DatakitError as exc:
        raise DatakitError(f"{where}: {exc}") from None


def _step_results(name: str) -> tuple[str, ...]:
    """The results a step gives (what ``${ID.KEY}`` may name), so a typo fails before the first step.
    tests/test_pipeline.py checks these against what each step really returns."""
    if name == "eval":  # the task's metrics, whichever task the run has
        from datakit.tasks import TASKS

        return ("split", "images", "metrics", *dict.fromkeys(m for spec in TASKS.values() for m in spec.metrics))
    return STEP_RESULTS[name]


STEP_RESULTS: dict[str, tuple[str, ...]] = {
    "sample": ("images", "output", "count", "classes"),
    "ingest": ("manifest", "count", "status"),
    "info": ("manifest", "info"),
    "split": ("manifest", "splits", "worst_deviation_pp", "moves"),
    "augment": ("manifest", "pipeline", "source", "derived", "carried", "split", "mode", "before", "after",
                "objects", "seconds", "verified"),
    "train": ("run", "task", "status", "monitor", "best_metric", "best_epoch", "epochs", "test_accuracy",
              "test_metrics", "seconds"),
    "sweep": ("output", "run", "best_trial", "best_params", "best_value", "val_accuracy", "test_accuracy", "counts"),
}


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string"}


def _literal_type(annotation: Any) -> str | None:
    """'int', 'float', 'bool' or 'str' for a step option annotated as that type (or it | None): the
    options a YAML value can be checked against before any step runs; None for anything else."""
    text = str(annotation).replace(" ", "")
    base = text[:-len("|None")] if text.endswith("|None") else text
    return base if base in _TYPE_WORDS else None


def _is_a(value: Any, expected: str) -> bool:
    if expected == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, {"int": int, "float": (int, float), "str": str}[expected])


def _check_options(where: str, name: str, options: Mapping[str, Any]) -> None:
    """Unknown options, and values outside an option's choices, fail before any step runs (config
    keys are checked by the config itself)."""
    signature = inspect.signature(STEPS[name])
    params = [p for p in list(signature.parameters.values())[1:] if p.kind != p.VAR_KEYWORD]
    takes_config_keys = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    known = [p.name for p in params]
    choices = _option_choices()
    for key in options:
        allowed = choices.get((name, key))
        value = options[key]
        if key == "output" and isinstance(value, str) and not _references(value) and not os.path.isabs(value) \
                and os.path.normpath(value).split(os.sep)[0] == "..":
            # --overwrite clears the pipeline's folder only: a step writing beside it would fail the rerun
            raise DatakitError(f"{where}: output {value!r} leaves the pipeline's output folder; a relative output "
                               "stays inside it (give an absolute path to write elsewhere)")
        if allowed and value is not None and not _references(value) and value not in allowed:
            raise DatakitError(f"{where}: step '{name}': {key} {value!r} is not one of {', '.join(allowed)}"
                               f"{_closest(str(value), allowed)}")
        if (name, key) == ("augment", "preset") and isinstance(value, str) and not _references(value):
            from datakit.augmentation import presets

            preset, _, orientation = value.partition(":")  # 'light' or 'light:fixed', as the step reads it
            try:
                presets.get(preset)
                if orientation:
                    presets.check_orientation(orientation)
            except DatakitError as exc:
                raise DatakitError(f"{where}: step 'augment': {exc}") from None
        if key in known:
            expected = _literal_type(signature.parameters[key].annotation)
            if expected and value is not None and not _references(value) and not _is_a(value, expected):
                raise DatakitError(f"{where}: step '{name}': {key} must be {_TYPE_WORDS[expected]}, got {value!r}")
            continue
        if not takes_config_keys:
            raise DatakitError(f"{where}: step '{name}' has no option '{key}'{_closest(key, known)} "
                               f"(options: {', '.join(known)})")
        try:
            if _references(options[key]):
                cfg.get_key(cfg.TrainConfig(), key)  # the value is known only when the step runs
            else:
                # key and type only: relations between keys depend on the step's config file
                cfg.check_value(cfg.resolve_key(key), options[key])
        except DatakitError as exc:
            message = str(exc)
            if "unknown config key" in message:
                message += f" (step options: {', '.join(known)})"
            raise DatakitError(f"{where}: {message}") from None
    missing = [p.name for p in params if p.default is p.empty and p.name not in options]
    if missing:
        raise DatakitError(f"{where}: step '{name}' needs {', '.join(repr(m) for m in missing)}")


def _parse_step(entry: Any, index: int, where: str) -> StepSpec:
    label = f"{where}step {index}"
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, Mapping):
        raise DatakitError(f"{label}: expected a mapping like `train: {{...}}`, got {entry!r}")
    entry = dict(entry)
    step_id = entry.pop("id", None)
    if len(entry) != 1:
        raise DatakitError(f"{label}: expected one step name per entry (plus an optional id), got "
                           f"{', '.join(map(str, entry)) or 'none'}")
    name, options = next(iter(entry.items()))
    name = str(name)
    if name not in STEPS:
        near = difflib.get_close_matches(name, list(STEPS), n=1, cutoff=0.5)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise DatakitError(f"{label}: unknown step '{name}'; {hint}known: {', '.join(STEPS)}")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise DatakitError(f"{label} '{name}': options must be a mapping, got {options!r}")
    step_id = str(step_id or name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", step_id):
        raise DatakitError(f"{label}: id {step_id!r} must be a simple name (letters, digits, _ and -)")
    return StepSpec(step_id, name, dict(options))


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def load_pipeline(
    pipeline: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> Pipeline:
    """Read and check a pipeline: step names, options, references; ``overrides`` are ``id.option: value``."""
    if isinstance(pipeline, Mapping):
        data, where, base, source = dict(pipeline), "pipeline: ", Path.cwd(), None
    else:
        path = Path(pipeline)
        data, where, base, source = cfg.load_yaml(path), f"{path}: ", path.resolve().parent, str(path)
    for key in data:
        if key not in PIPELINE_KEYS:
            raise DatakitError(f"{where}unknown field '{key}'{_closest(str(key), PIPELINE_KEYS)}; "
                               f"fields: {', '.join(PIPELINE_KEYS)}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DatakitError(f"{where}`steps` must be a non-empty list")
    steps = [_parse_step(entry, i, where) for i, entry in enumerate(raw_steps, start=1)]
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise DatakitError(f"{where}step id(s) {', '.join(twice)} used twice; give repeated steps `id: NAME`")

    overrides = dict(overrides or {})
    if "seed" in overrides:
        from_set = overrides.pop("seed")
        seed = from_set if seed is None else seed  # --seed wins over --set seed=
    for key, value in overrides.items():
        step_id, _, option = key.partition(".")
        match = [s for s in steps if s.id == step_id]
        if not match or not option:
            raise DatakitError(f"--set {key}: expected STEP.OPTION with STEP one of {', '.join(ids)}"
                               f"{_closest(step_id, ids)}")
        match[0].options[option] = value
    seed = data.get("seed", 0) if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatakitError(f"{where}seed must be an integer, got {seed!r}")

    for index, step in enumerate(steps, start=1):
        label = f"{where}step {index} '{step.id}'"
        _check_options(label, step.name, step.options)
        if step.name == "train":
            _check_train_config(label, step.options, base)
        for ref in _references(step.options):
            head = ref.split(".", 1)[0]
            if ref in ("output", "seed"):
                continue
            if head not in ids[:index - 1]:
                later = " (it runs later)" if head in ids else ""
                raise DatakitError(f"{label}: ${{{ref}}} does not name an earlier step{later}; "
                                   f"earlier steps: {', '.join(ids[:index - 1]) or 'none'}")
            key = ref.split(".", 1)[1] if "." in ref else ""
            gives = _step_results(steps[ids.index(head)].name)
            if key.split(".", 1)[0] not in gives:
                raise DatakitError(f"{label}: ${{{ref}}}: step '{head}' gives no result '{key}'"
                                   f"{_closest(key, gives)} (results: {', '.join(gives)})")
    name = str(data.get("name") or (Path(source).stem if source else "pipeline"))
    if not name or name.startswith(".") or "/" in name or "\\" in name or not name.isprintable() or len(name) > 128:
        # the name becomes the default output folder runs/NAME: '../x' or '/x' would write elsewhere
        raise DatakitError(f"{where}name {name!r} must be a plain name (no '/' or '\\', not starting with '.'), "
                           "because it names the output folder runs/NAME")
    return Pipeline(name=name, seed=seed, steps=steps, base=base, source=source, description=data.get("description"))


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class StepRecord:
    id: str
    step: str
    options: dict[str, Any]
    status: str = "pending"  # pending | running | completed | failed | interrupted
    results: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class PipelineResult:
    name: str
    output: Path
    seed: int
    steps: list[StepRecord]
    status: str
    seconds: float = 0.0

    def results(self, step_id: str) -> dict[str, Any]:
        return next(s.results for s in self.steps if s.id == step_id)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "output": str(self.output), "seed": self.seed, "status": self.status,
                "seconds": round(self.seconds, 3),
                "steps": [{"id": s.id, "step": s.step, "status": s.status, "seconds": round(s.seconds, 3),
                           "options": s.options, "results": s.results, "error": s.error} for s in self.steps]}


def _substitute(value: Any, results: Mapping[str, Mapping[str, Any]], fixed: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, Mapping):
        return {k: _substitute(v, results, fixed, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results, fixed, where) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(ref: str) -> Any:
        if ref in fixed:
            return fixed[ref]
        step_id, _, key = ref.partition(".")
        produced = results.get(step_id, {})
        if key not in produced:
            raise DatakitError(f"{where}: ${{{ref}}}: step '{step_id}' has no result '{key}'"
                               f"{_closest(key, list(produced))} (results: {', '.join(produced)})")
        return produced[key]

    whole = REFERENCE.fullmatch(value)
    if whole:
        return lookup(whole.group(1))  # the value itself, not its text: numbers stay numbers
    return REFERENCE.sub(lambda m: str(lookup(m.group(1))), value)


def _prepare_output(output: Path, overwrite: bool) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not (output / "pipeline.json").is_file():
            raise DatakitError(f"{output}: output folder exists and is not empty; choose a new folder")
        if not overwrite:
            raise DatakitError(f"{output}: holds an earlier pipeline run; choose a new folder or pass --overwrite")
        shutil.rmtree(output)  # only ever a folder that an earlier pipeline run wrote (pipeline.json)
    output.mkdir(parents=True, exist_ok=True)


def _write_record(output: Path, result: PipelineResult) -> None:
    write_json(output / "pipeline.json", result.as_dict())


@takes_allow_outside
def run_pipeline(
    pipeline: str | os.PathLike[str] | Mapping[str, Any],
    output: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    console: Any = None,
) -> PipelineResult:
    """Run every step of ``pipeline`` (YAML path or dict) in order into ``output`` (default runs/NAME).

    ``overrides`` maps ``"id.option"`` to a value (the CLI's ``--set``); ``seed`` replaces the
    pipeline's. A failing step stops the pipeline with ``StepFailed`` naming the step.
    """
    started = time.perf_counter()
    spec = load_pipeline(pipeline, overrides, seed)
    out = Path(output) if output is not None else Path("runs") / spec.name
    _prepare_output(out, overwrite)
    out = out.resolve()
    (out / "pipeline.yaml").write_text(yaml.safe_dump(spec.as_dict(), sort_keys=False, default_flow_style=None),
                                       encoding="utf-8")
    records = [StepRecord(s.id, s.name, s.options) for s in spec.steps]
    result = PipelineResult(spec.name, out, spec.seed, records, "running")
    _write_record(out, result)
    latest: dict[str, str] = {}
    produced: dict[str, dict[str, Any]] = {}
    fixed = {"output": str(out), "seed": spec.seed}
    total = len(spec.steps)
    for index, (step, record) in enumerate(zip(spec.steps, records), start=1):
        label = f"step {index}/{total} '{step.id}'"
        if console is not None:
            console.rule(f"{label}: {step.name}")
        record.status = "running"
        step_started = time.perf_counter()
        try:
            options = _substitute(step.options, produced, fixed, label)
            record.options = options
            _write_record(out, result)
            ctx = StepContext(id=step.id, output=out / step.id, base=spec.base, seed=spec.seed, latest=dict(latest),
                              show_progress=show_progress, console=console)
            record.results = STEPS[step.name](ctx, **options)
        except KeyboardInterrupt:
            record.status, result.status = "interrupted", "interrupted"
            record.seconds = time.perf_counter() - step_started
            _write_record(out, result)
            raise
        except Exception as exc:
            record.status, result.status = "failed", "failed"
            record.seconds = time.perf_counter() - step_started
            detail = str(exc) if isinstance(exc, DatakitError) else f"{type(exc).__name__}: {exc}"
            record.error = detail
            result.seconds = time.perf_counter() - started
            _write_record(out, result)
            exit_code = exc.exit_code if isinstance(exc, DatakitError) else 1
            detail = detail[len(label) + 2:] if detail.startswith(f"{label}: ") else detail  # said once
            raise StepFailed(f"pipeline '{spec.name}' stopped at {label}: {detail}", exit_code) from exc
        record.status = "completed"
        record.seconds = time.perf_counter() - step_started
        produced[step.id] = record.results
        latest.update({k: str(record.results[k]) for k in LATEST_KINDS if record.results.get(k) is not None})
        _write_record(out, result)
    result.status = "completed"
    result.seconds = time.perf_counter() - started
    _write_record(out, result)
    return result
