"""A sweep's first trial: the values ``datakit train`` would choose with no config.

TPE and random search start from random points; on a small budget they can end below what the
data-aware defaults reach without any search (issue 13's benchmark saw TPE pick learning rates that
stall). Queuing the defaults as the first trial makes the sweep's best at least the defaults'
result, by validation. Each searched key takes the value the base config gives it: derived from
the data when the base config leaves it unset (``datakit.engine.defaults``), else its set value.
A value outside the space is left for the sampler to draw, and the note says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from datakit import config as cfg
from datakit.sweep_space import Param, SearchSpace

ORIGIN = "defaults"
"""The ``origin`` user attribute of the queued trial (results.csv and best.json carry it)."""


@dataclass
class Baseline:
    params: dict[str, Any]  # Optuna's stored form, for ``study.enqueue_trial``
    outside: dict[str, Any] = field(default_factory=dict)  # the defaults the space does not contain

    def note(self) -> str:
        if not self.params:
            return ("no trial of the defaults: none of their values lies in the space "
                    f"({_listed(self.outside)})")
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        line = f"trial 0 runs what `datakit train` would choose ({shown})"
        if self.outside:
            line += f"; outside the space, so drawn instead: {_listed(self.outside)}"
        return line


def _listed(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def stored_form(param: Param, value: Any) -> tuple[bool, Any]:
    """(whether ``value`` is one the parameter can take, its Optuna form)."""
    if param.kind == "categorical":
        for choice, stored in zip(param.choices, param.optuna_choices()):
            if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                return True, stored
        return False, None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return False, None
    if param.kind == "int" and value != int(value):
        return False, None
    if not param.low <= value <= param.high:
        return False, None
    if param.step is not None:
        steps = (value - param.low) / param.step
        if not math.isclose(steps, round(steps), abs_tol=1e-9):
            return False, None
    return True, int(value) if param.kind == "int" else float(value)


def baseline(space: SearchSpace, manifest: Any, task: str) -> Baseline:
    """The queued trial's parameters for ``space`` on ``manifest`` (a loaded manifest of ``task``)."""
    from datakit.engine.defaults import derive_config

    config, _ = derive_config(manifest, space.base_config, task)
    result = Baseline({})
    for param in space.params:
        value = cfg.get_key(config, param.key)
        inside, stored = stored_form(param, value)
        if inside:
            result.params[param.key] = stored
        else:
            result.outside[param.key] = value
    return result
