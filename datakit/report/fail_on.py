"""`--fail-on` expressions: ``imbalance>3``, ``leakage>0``, ``duplicates>=10``...

An expression is ``METRIC OP NUMBER``. The metrics are the numbers the report sections publish
(see ``METRICS``); a malformed expression or an unknown metric is bad usage (exit 2), a crossed
threshold is a failed check (exit 1, raised by the caller once the report is printed and saved).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass
from typing import Callable

from datakit.errors import DatakitError

# metric -> what it counts; the sections compute them (report/<section>.py, ``metrics()``)
METRICS: dict[str, str] = {
    "imbalance": "largest / smallest class count over the train split (whole set when unsplit; inf when a class is missing)",
    "broken": "image files that cannot be used (status other than ok)",
    "duplicates": "images that are an exact or near copy of another image (cluster size - 1, summed)",
    "leakage": "val/test images with an exact or near duplicate in train",
    "conflicts": "duplicate clusters holding more than one label",
    "shortcuts": "properties that alone separate the classes",
    "issues": "images with an image issue (dark, light, blurry, low information, odd aspect, odd size)",
    "degenerate_boxes": "boxes of zero or negative size, or outside the image",
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|inf)\s*$")


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float
    text: str

    def crossed(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


def parse(expression: str) -> Condition:
    """One expression, or a DatakitError that says what is wrong with it."""
    match = _PATTERN.match(expression)
    if not match:
        raise DatakitError(
            f"--fail-on {expression!r} is not METRIC OP NUMBER (e.g. 'imbalance>3', 'leakage>0'); "
            f"OP is one of > >= < <= == !=")
    metric, op, number = match.groups()
    metric = metric.lower()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, list(METRICS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DatakitError(f"--fail-on {expression!r}: unknown metric '{metric}'{hint}; "
                           f"known: {', '.join(METRICS)}")
    return Condition(metric, op, float(number), expression.strip())


def parse_all(expressions: list[str] | tuple[str, ...] | None) -> list[Condition]:
    return [parse(e) for e in expressions or ()]


def evaluate(conditions: list[Condition], metrics: dict[str, float | None]) -> list[str]:
    """The crossed conditions, each as 'imbalance = 4.2 (imbalance>3)'.

    A metric the report could not measure (e.g. ``leakage`` with no splits) counts as 0.
    """
    failed = []
    for cond in conditions:
        value = metrics.get(cond.metric)
        value = 0.0 if value is None else float(value)
        if cond.crossed(value):
            shown = "inf" if math.isinf(value) else f"{value:g}"
            failed.append(f"{cond.metric} = {shown} ({cond.text})")
    return failed
