"""The protocol between a task and the engine.

The engine (``datakit.engine``, ``datakit.training``) creates one ``Task`` per run with the
resolved config and calls, in this order::

    data = task.prepare(manifest, fixed_splits, classes)   # usable rows per split, classes, notes
    pre = task.preprocess(data)                             # how a file becomes a model input
    sets = task.datasets(data, pre, display, ..., notes)    # split -> torch Dataset; skipped files noted
    model = task.build_model(pre, data)                     # looked up by (task, model.name)
    task.setup_loss(data, device)
    per batch:  loss, parts, outputs, targets = task.step(model, batch, device, train=True)
    per pass:   ev = task.evaluator(data); ev.update(outputs, targets); ev.reduce(ctx); ev.compute()

and for a trained run: ``task.outputs_to_numpy`` (a batch of model outputs as arrays),
``task.to_rows`` (``predict``'s table) and ``task.eval_artefacts`` (``eval``: the task's metrics
under their bare names, and the files it writes: confusion matrix today; PR curves and overlays
for the object tasks). A task module holds no loop code.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol


class Evaluator(Protocol):
    """Accumulates a pass's outputs; ``compute`` returns {metric name: value}, the task's names."""

    def update(self, outputs: Any, targets: Any) -> None: ...

    def reduce(self, ctx: Any) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Task:
    """Base class: subclasses set ``name`` and ``metrics`` and implement the methods below."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]

    def __init__(self, config: Any) -> None:
        self.config = config

    # data
    def prepare(self, manifest: Any, fixed_splits: Any = None, classes: list[str] | None = None) -> Any:
        raise NotImplementedError

    def preprocess(self, data: Any) -> Any:
        raise NotImplementedError

    def datasets(self, data: Any, preprocess: Any, display: Any, fill_normalization: bool,
                 notes: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def sample_weights(self, data: Any) -> Any:
        return None

    def collate(self, batch: Any) -> Any:
        return batch

    # model, loss, metrics
    def build_model(self, preprocess: Any, data: Any) -> Any:
        raise NotImplementedError

    def setup_loss(self, data: Any, device: Any) -> None:
        raise NotImplementedError

    def step(self, model: Any, batch: Any, device: Any, train: bool) -> tuple[Any, dict[str, Any], Any, Any]:
        """(loss to minimize, its named parts, outputs, targets) for one batch."""
        raise NotImplementedError

    def evaluator(self, data: Any) -> Evaluator:
        raise NotImplementedError

    def diagnose(self, train: Evaluator, val: Evaluator, data: Any) -> dict[str, str]:
        """Signs that training is not learning, after an epoch past the warm-up: {kind: what, likely
        causes, the keys to change}. The engine says each one during the run and in the summary."""
        return {}

    # a trained run
    @staticmethod
    def outputs_to_numpy(outputs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def to_rows(paths: list[str], outputs: Any, errors: list[str | None], classes: list[str],
                all_probabilities: bool = False) -> Any:
        raise NotImplementedError

    @staticmethod
    def eval_artefacts(rows: Any, images: Any, outputs: Any, classes: list[str], out_dir: Any, split: str,
                       max_examples: int = 36) -> tuple[dict[str, Any], dict[str, str]]:
        raise NotImplementedError
