"""Input checks before scoring: every problem a counted line with examples, never a silent drop.

Without ``--lenient`` any problem stops the command (exit 2) with all the lines at once; with it
the offending predictions are skipped and the lines are reported with the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datakit.errors import DatakitError

MAX_EXAMPLES = 3


@dataclass
class Lint:
    source: str
    problems: dict[str, list[Any]] = field(default_factory=dict)  # message -> [count, examples]
    # problems of the file as a whole (it holds no predictions): not counted per prediction, and
    # --lenient has nothing to skip for them, so the error does not suggest it
    file_problems: list[str] = field(default_factory=list)

    def add(self, problem: str, example: Any, count: int = 1) -> None:
        entry = self.problems.setdefault(problem, [0, []])
        entry[0] += count
        if len(entry[1]) < MAX_EXAMPLES and example not in entry[1]:
            entry[1].append(example)

    def add_file_problem(self, problem: str) -> None:
        self.file_problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems or self.file_problems)

    def lines(self) -> list[str]:
        return self.file_problems + [
            f"{count} {problem} (e.g. {', '.join(str(e) for e in examples)})" if examples else f"{count} {problem}"
            for problem, (count, examples) in self.problems.items()]

    def as_list(self) -> list[dict[str, Any]]:
        return [{"problem": problem, "count": 0, "examples": []} for problem in self.file_problems] + [
            {"problem": problem, "count": count, "examples": [str(e) for e in examples]}
            for problem, (count, examples) in self.problems.items()]

    def finish(self, lenient: bool) -> list[dict[str, Any]]:
        """Raise with every line unless ``lenient``; then the report of what was skipped."""
        if self and not lenient:
            hint = " — fix the predictions, or pass --lenient to skip these and score the rest" if self.problems else ""
            raise DatakitError(f"{self.source}: " + "; ".join(self.lines()) + hint)
        return self.as_list()
