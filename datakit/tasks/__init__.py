"""Tasks: what a model is trained to do. One module per task plus one entry in ``TASKS``.

A task supplies everything the engine (``datakit.engine``) must not know: which rows of a
manifest are usable and how they are split, the dataset and batches, the model, the loss and
its named parts, and the evaluator that turns outputs into named metrics. The engine runs the
epochs. Adding a task is one module with a ``Task`` subclass (see ``datakit.tasks.base``) and one
``TaskSpec`` here; its metric names are declared here so that configs, sweeps and the CLI can
check ``train.monitor`` without importing torch.

Names are the manifest's task names; the short aliases are accepted everywhere a task is named.
``task: auto`` picks one from what the manifest holds (``resolve_task``).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datakit.errors import DatakitError

if TYPE_CHECKING:  # pragma: no cover
    from datakit.tasks.base import Task


@dataclass(frozen=True)
class TaskSpec:
    name: str
    alias: str
    metrics: tuple[str, ...]  # snake_case, higher is better; the first is the default monitor
    module: str | None  # None: declared (names, metrics) but not implemented yet

    @property
    def default_monitor(self) -> str:
        return f"val_{self.metrics[0]}"

    def monitors(self) -> list[str]:
        """Every value ``train.monitor`` and a sweep's ``metric`` may take for this task."""
        return [f"val_{m}" for m in self.metrics] + ["val_loss"]


TASKS: dict[str, TaskSpec] = {
    "classification": TaskSpec("classification", "classify", ("accuracy", "macro_f1"), "datakit.tasks.classification"),
    "localization": TaskSpec("localization", "localize", ("accuracy", "box_iou", "acc_iou50"),
                             "datakit.tasks.localization"),
    "detection": TaskSpec("detection", "detect", ("map", "map50", "map75"), "datakit.tasks.detection"),
    "semantic_segmentation": TaskSpec("semantic_segmentation", "segment", ("miou", "dice", "pixel_accuracy"),
                                      "datakit.tasks.segmentation"),
    "instance_segmentation": TaskSpec("instance_segmentation", "instance", ("mask_map", "mask_map50", "map", "map50"),
                                      "datakit.tasks.instance"),
}
ALIASES: dict[str, str] = {spec.alias: name for name, spec in TASKS.items()}
AUTO = "auto"


def task_names() -> list[str]:
    return list(TASKS)


def canonical_task(name: str) -> str:
    """The task name for a name or alias; DatakitError with the closest match otherwise."""
    key = str(name).strip().lower().replace("-", "_")
    if key in TASKS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    known = [*TASKS, *ALIASES]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise DatakitError(f"unknown task '{name}'{hint} (tasks: {', '.join(TASKS)}, auto; aliases: {', '.join(ALIASES)})")


def get_spec(name: str) -> TaskSpec:
    return TASKS[canonical_task(name)]


def get_task(name: str) -> type["Task"]:
    """The ``Task`` class of a task name or alias (its module is imported on first use)."""
    spec = get_spec(name)
    if spec.module is None:
        implemented = [n for n, s in TASKS.items() if s.module]
        raise DatakitError(f"task '{spec.name}' is not implemented yet (implemented: {', '.join(implemented)})")
    return importlib.import_module(spec.module).TASK


def all_monitors() -> list[str]:
    """Monitors valid for some task (what a config with ``task: auto`` may name before the task is known)."""
    seen: dict[str, None] = {}
    for spec in TASKS.values():
        seen.update(dict.fromkeys(spec.monitors()))
    return list(seen)


def higher_is_better(metric: str) -> bool:
    """Every metric is better higher, except losses."""
    return not metric.endswith("loss")


def check_monitor(task: str, monitor: str, key: str = "train.monitor") -> None:
    spec = get_spec(task) if task != AUTO else None
    choices = spec.monitors() if spec else all_monitors()
    if monitor not in choices:
        close = difflib.get_close_matches(monitor, choices, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        what = f"task {spec.name}" if spec else "any task"
        raise DatakitError(f"{key} '{monitor}' is not a metric of {what}{hint} (choose: {', '.join(choices)})")


def resolve_task(setting: str, manifest: Any, source: str = "in the config") -> tuple[str, str]:
    """(task name, why) for a config's ``task`` and a manifest; ``source`` says where a task other
    than auto was set ('with --set task=segment', 'in cfg.yaml').

    ``auto`` picks classification when images have labels and no objects, detection when boxes
    exist (instance masks make ``instance`` possible, which the reason says), semantic
    segmentation when only semantic masks exist. It never infers localization.
    """
    if setting != AUTO:
        name = canonical_task(setting)
        return name, f"set {source}"
    annotations = manifest.annotations
    images = manifest.images
    boxes = int(annotations["bbox_w"].notna().sum()) if "bbox_w" in annotations.columns else 0
    instance_masks = int(annotations["segmentation_kind"].notna().sum()) \
        if "segmentation_kind" in annotations.columns else 0
    semantic = int(images["semantic_mask"].notna().sum()) if "semantic_mask" in images.columns else 0
    if boxes:
        reason = f"auto: the manifest has {boxes} boxes -> detection"
        if instance_masks:
            reason += f" (it also has {instance_masks} instance masks: task instance is possible)"
        return "detection", reason
    if semantic:
        return "semantic_segmentation", f"auto: {semantic} images have a semantic mask and there are no boxes " \
                                        "-> semantic_segmentation"
    labelled = int(images["label"].notna().sum()) if "label" in images.columns else 0
    if labelled:
        return "classification", f"auto: {labelled} images have a label and there are no objects -> classification"
    # nothing to learn from yet: classification says exactly what it misses (labels)
    return "classification", "auto: no labels, boxes or masks found; classification is the default"
