"""A sweep's search space: which config keys vary, over which values, searched how.

A space is a YAML mapping (or the same dict in Python)::

    sampler: tpe              # grid, random or tpe
    trials: 12                # random/tpe: trials to run; grid: at most this many (default: all)
    metric: val_accuracy      # val_<metric> of the task (maximized) or val_loss (minimized), best epoch of a
                              # trial; auto (default): train.monitor if set, else the task's first metric
    seed: 0                   # sampler seed (trial configs take theirs from `set`/`config`)
    pruner: median            # median, none, or {name: median, startup_trials: 3, warmup_epochs: 2}
    baseline: true            # random/tpe: trial 0 runs the values `datakit train` would choose (default true)
    config: digits-cnn.yaml   # base train config, relative to this file (default: the defaults)
    set: {train.epochs: 12}   # config keys every trial shares
    params:
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      train.batch_size: {type: int, low: 32, high: 128, step: 32}
      model.conv.filters: {choices: [[16, 32], [32, 64]]}
      optim.name: [adamw, sgd]            # a plain list is a set of choices

Every key is checked through ``datakit.config`` when the space is loaded, so a misspelt key fails
before any trial runs, naming the closest real one.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from datakit import config as cfg
from datakit.errors import DatakitError
from datakit.tasks import AUTO, all_monitors, check_monitor, higher_is_better

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "none")
SPACE_KEYS = ("sampler", "trials", "metric", "seed", "pruner", "baseline", "config", "set", "params")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")


def _closest(word: str, known: tuple[str, ...] | list[str]) -> str:
    near = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else f"; known: {', '.join(known)}"


@dataclass
class Param:
    """One searched config key: a float or int range, or a list of choices."""

    key: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = field(default_factory=list)

    @property
    def encoded(self) -> bool:
        """Optuna stores only None/bool/int/float/str: lists and dicts travel as JSON text."""
        return any(not (c is None or isinstance(c, (bool, int, float, str))) for c in self.choices)

    def optuna_choices(self) -> list[Any]:
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def decode(self, value: Any) -> Any:
        """The config value for what Optuna sampled."""
        return json.loads(value) if self.kind == "categorical" and self.encoded else value

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return self.decode(trial.suggest_categorical(self.key, self.optuna_choices()))

    def grid_values(self) -> list[Any]:
        """Every value this parameter takes in a grid search (Optuna's stored form)."""
        if self.kind == "categorical":
            return self.optuna_choices()
        if self.step is None or self.log:
            raise DatakitError(f"param '{self.key}': a grid search needs `choices`, or a `step` without `log`, "
                               f"for a {self.kind} range")
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 12) for v in values]

    def candidate_values(self) -> list[Any]:
        """Values to check against the config before any trial runs: the ends or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [self.low, self.high]

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": self.choices}
        data: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.step is not None:
            data["step"] = self.step
        return data


@dataclass
class SearchSpace:
    params: list[Param]
    sampler: str = "tpe"
    trials: int | None = None
    metric: str = AUTO  # resolved by the sweep once the manifest (and so the task) is known
    seed: int = 0
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    base_config: cfg.TrainConfig = field(default_factory=cfg.TrainConfig)
    config_source: str | None = None
    baseline: bool = True
    """random/tpe: queue the defaults as the first trial (``datakit.sweep_baseline``); grid ignores it."""

    @property
    def direction(self) -> str:
        return "maximize" if higher_is_better(self.metric) else "minimize"

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def target_trials(self) -> int:
        """How many finished trials make the sweep complete."""
        if self.sampler == "grid":
            size = self.grid_size()
            return min(size, self.trials) if self.trials else size
        return self.trials or 20

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {p.key: p.suggest(trial) for p in self.params}

    def identity(self) -> dict[str, Any]:
        """What trials of one study must share: resuming with a different space is refused."""
        return {"params": {p.key: p.as_dict() for p in self.params}, "metric": self.metric,
                "base_config": cfg.to_dict(self.base_config)}

    def as_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "trials": self.target_trials(), "metric": self.metric, "seed": self.seed,
                "pruner": self.pruner, "baseline": self.baseline, "config": self.config_source,
                "params": {p.key: p.as_dict() for p in self.params}, "base_config": cfg.to_dict(self.base_config)}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatakitError(f"{what} must be a number, got {value!r}")
    return float(value)


def _parse_param(raw_key: str, spec: Any, base: cfg.TrainConfig, where: str) -> Param:
    key = cfg.resolve_key(str(raw_key))
    try:
        cfg.check_value(key, cfg.get_key(base, key))  # an unknown key fails here, naming the closest
    except DatakitError as exc:
        raise DatakitError(f"{where}params: {exc}") from None
    what = f"{where}param '{key}'"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, Mapping):
        raise DatakitError(f"{what}: expected a list of choices or a mapping with type/low/high or choices, "
                           f"got {spec!r}")
    for name in spec:
        if name not in PARAM_KEYS:
            raise DatakitError(f"{what}: unknown field '{name}'{_closest(str(name), PARAM_KEYS)}")
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if kind in ("categorical", "choice"):
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise DatakitError(f"{what}: `choices` must be a non-empty list")
        param = Param(key, "categorical", choices=copy.deepcopy(choices))
    elif kind in ("float", "int"):
        if "low" not in spec or "high" not in spec:
            raise DatakitError(f"{what}: a {kind} range needs `low` and `high`")
        low, high = _number(spec["low"], f"{what}: low"), _number(spec["high"], f"{what}: high")
        step = _number(spec["step"], f"{what}: step") if spec.get("step") is not None else None
        log = spec.get("log", False)
        if not isinstance(log, bool):  # bool("no") is True: a quoted word must not turn a log scale on
            raise DatakitError(f"{what}: log must be true or false, got {log!r}")
        if kind == "int" and not all(float(v).is_integer() for v in (low, high, *([step] if step else []))):
            raise DatakitError(f"{what}: an int range needs whole numbers for low, high and step, got "
                               + ", ".join(f"{v:g}" for v in (low, high, *([step] if step else []))))
        if low > high:
            raise DatakitError(f"{what}: low ({low:g}) is above high ({high:g})")
        if log and low <= 0:
            raise DatakitError(f"{what}: a log range needs low > 0, got {low:g}")
        if log and step is not None:
            raise DatakitError(f"{what}: `log` and `step` cannot be combined")
        if step is not None and step <= 0:
            raise DatakitError(f"{what}: step must be > 0, got {step:g}")
        param = Param(key, kind, low=low, high=high, log=log, step=step)
    elif kind is None:
        raise DatakitError(f"{what}: give `choices: [...]` or `type: float|int` with `low` and `high`")
    else:
        raise DatakitError(f"{what}: unknown type '{kind}'{_closest(str(kind), ('float', 'int', 'categorical'))}")
    for value in param.candidate_values():
        try:
            cfg.resolve_config(base, {key: value})  # wrong type or out of range: fails before any trial
        except DatakitError as exc:
            raise DatakitError(f"{what}: {exc}") from None
    return param


def _parse_pruner(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or isinstance(raw, str):
        raw = {"name": raw or "none"}
    if raw is False:
        raw = {"name": "none"}
    if not isinstance(raw, Mapping):
        raise DatakitError(f"{where}pruner must be median, none or a mapping, got {raw!r}")
    name = raw.get("name", "median")
    if name not in PRUNERS:
        raise DatakitError(f"{where}unknown pruner '{name}'{_closest(str(name), PRUNERS)}")
    allowed = ("name", "startup_trials", "warmup_epochs")
    for key in raw:
        if key not in allowed:
            raise DatakitError(f"{where}pruner: unknown field '{key}'{_closest(str(key), allowed)}")
    counts = {}
    for field_name, default in (("startup_trials", 3), ("warmup_epochs", 2)):
        value = raw.get(field_name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatakitError(f"{where}pruner: {field_name} must be a whole number >= 0, got {value!r}")
        counts[field_name] = value
    return {"name": name, **counts}


def load_space(
    space: Mapping[str, Any] | str | os.PathLike[str],
    config: cfg.TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    replace: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """Read and check a search space (YAML path or dict).

    ``config`` replaces the space's own ``config`` (base train config); ``overrides`` are applied
    after the space's ``set``; both are shared by every trial. ``replace`` sets top-level fields
    (e.g. ``{"trials": 4}`` from the command line).
    """
    if isinstance(space, Mapping):
        data, where, folder = dict(space), "space: ", Path.cwd()
    else:
        path = Path(space)
        data, where, folder = cfg.load_yaml(path), f"{path}: ", path.parent
    data.update({k: v for k, v in (replace or {}).items() if v is not None})
    for key in data:
        if key not in SPACE_KEYS:
            raise DatakitError(f"{where}unknown field '{key}'{_closest(str(key), SPACE_KEYS)}")
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise DatakitError(f"{where}unknown sampler '{sampler}'{_closest(str(sampler), SAMPLERS)}")
    metric = data.get("metric", AUTO)
    choices = [AUTO, *all_monitors()]
    if metric not in choices:
        raise DatakitError(f"{where}unknown metric '{metric}'{_closest(str(metric), choices)} "
                           f"(val_loss or val_<metric> of the task; auto: the task's first metric)")
    trials = data.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise DatakitError(f"{where}trials must be a positive integer, got {trials!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatakitError(f"{where}seed must be an integer, got {seed!r}")
    baseline = data.get("baseline", True)
    if not isinstance(baseline, bool):
        raise DatakitError(f"{where}baseline must be true or false, got {baseline!r}")

    source = config if config is not None else data.get("config")
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_absolute() and config is None:
        source = folder / source  # a space file names its base config relative to itself
    shared = data.get("set") or {}
    if not isinstance(shared, Mapping):
        raise DatakitError(f"{where}`set` must be a mapping of config keys to values")
    try:
        base = cfg.resolve_config(source, {**shared, **(overrides or {})})
    except DatakitError as exc:
        raise DatakitError(exc if str(exc).startswith(where) else f"{where}{exc}") from None
    if metric == AUTO and base.train.monitor != AUTO:
        metric = base.train.monitor
    if metric != AUTO:
        try:
            check_monitor(base.task, metric, key="metric")
        except DatakitError as exc:
            raise DatakitError(f"{where}{exc}") from None
        # trials are ranked by this metric, so each run keeps the checkpoint that is best by it
        base.train.monitor = metric

    params_raw = data.get("params")
    if not isinstance(params_raw, Mapping) or not params_raw:
        raise DatakitError(f"{where}`params` must map at least one config key to its values")
    params = [_parse_param(k, v, base, where) for k, v in params_raw.items()]
    seen: set[str] = set()
    for p in params:
        if p.key in seen:
            raise DatakitError(f"{where}param '{p.key}' is given twice (an alias and its dotted key?)")
        seen.add(p.key)
    fixed = {cfg.resolve_key(k): k for k in (overrides or {})}
    both = sorted(key for key in seen if key in fixed)
    if both:  # the trials would use the searched values: the --set value would silently do nothing
        raise DatakitError(f"{where}{', '.join(both)} is searched (params), so --set {fixed[both[0]]}=... would be "
                           "ignored; drop it, or remove the key from the space")
    space_obj = SearchSpace(params=params, sampler=sampler, trials=trials, metric=metric, seed=seed,
                            pruner=_parse_pruner(data.get("pruner", "median"), where), base_config=base,
                            config_source=str(source) if isinstance(source, (str, os.PathLike)) else None,
                            baseline=baseline)
    if sampler == "grid":
        try:
            space_obj.grid()
        except DatakitError as exc:
            raise DatakitError(f"{where}{exc}") from None
    return space_obj
