"""Detection: the boxes and classes of every object in an image.

Models come from ``datakit.models`` under ("detection", name): the light CenterNet-style ``cnn``
(the default; its ``forward`` gives raw maps, its ``loss`` and ``decode`` read them) and
torchvision's detectors (``forward(images, targets)`` gives named losses in training and
detections in eval). Images without objects are negatives: they teach the background.
Metrics: COCO bbox ``map``, ``map50``, ``map75`` from ``datakit.metrics.coco`` (pycocotools'
protocol), computed on the validation (and test) passes; the training pass reports no mAP
(its outputs are not decoded, to keep training fast), so ``train_map`` is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from datakit import distributed
from datakit.tasks import boxdata
from datakit.tasks.localization import LocalizationTask


def _core(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # under DDP the model's own methods are on .module


class DetectionEvaluator:
    """Every image's true boxes and detections over a pass; COCO bbox mAP at ``compute``."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, outputs: Any, targets: Any) -> None:
        if not isinstance(outputs, list):  # a training pass: nothing decoded
            return
        for det, target in zip(outputs, targets):
            self.images.append((target["boxes"].cpu().numpy(), target["labels"].cpu().numpy(),
                                det["boxes"].float().cpu().numpy(), det["scores"].float().cpu().numpy(),
                                det["labels"].cpu().numpy()))

    def reduce(self, ctx: distributed.Context) -> None:
        if ctx.active:
            gathered: list[Any] = [None] * ctx.world
            torch.distributed.all_gather_object(gathered, self.images)
            self.images = [item for part in gathered for item in part]

    def compute(self) -> dict[str, float]:
        from datakit.metrics import coco

        nan = float("nan")
        if not self.images:
            return {"map": nan, "map50": nan, "map75": nan}

        def instances(rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]) -> coco.Instances:
            image = np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b, _, _ in rows])
            boxes = np.concatenate([b for _, b, _, _ in rows]).reshape(-1, 4).astype(np.float64)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            category = np.concatenate([c for _, _, c, _ in rows]).astype(np.int64) + 1
            score = None if rows[0][3] is None else np.concatenate([s for _, _, _, s in rows]).astype(np.float64)
            n = len(image)
            return coco.Instances(image, category, xywh, xywh[:, 2] * xywh[:, 3], np.arange(1, n + 1),
                                  iscrowd=np.zeros(n, dtype=np.int64), score=score)

        gt = instances([(i, g, gl, None) for i, (g, gl, _, _, _) in enumerate(self.images)])
        dt = instances([(i, d, dl, ds) for i, (_, _, d, ds, dl) in enumerate(self.images)])
        result = coco.evaluate(gt, dt, range(len(self.images)), range(1, self.k + 1))
        values = {"map": coco.stat(result, True), "map50": coco.stat(result, True, 0.5),
                  "map75": coco.stat(result, True, 0.75)}
        # no ground truth at all (a pass of negatives only): undefined, not a score of 0
        return {k: nan if v is None else float(v) for k, v in values.items()}


def apply_family_defaults(config: Any, family_defaults: dict[str, Any]) -> list[str]:
    """Set a model family's own defaults (learning rate, input size, clipping, warm-up) on the keys
    the user did not set and the config leaves at datakit's global defaults; a note per key changed."""
    from datakit import config as cfg

    base = cfg.resolve_config(None)
    chosen = cfg.user_set_keys(config)  # what the user set (file, --set, flag, sweep) is never changed
    notes = []
    for key, value in family_defaults.items():
        current = cfg.get_key(config, key)  # dotted keys of any depth (model.conv.filters)
        if key not in chosen and current == cfg.get_key(base, key) and current != value:
            *path, leaf = key.split(".")
            node = config
            for part in path:
                node = getattr(node, part)
            setattr(node, leaf, value)  # not cfg.set_key: a family's default is not the user's choice
            notes.append(f"{key} = {value} (model {config.model.name}'s default; set {key} to choose another)")
    return notes


class DetectionTask(LocalizationTask):
    name = "detection"
    metrics = ("map", "map50", "map75")
    one_object = False

    def __init__(self, config: Any) -> None:
        from datakit.models import get_family

        super().__init__(config)
        # before the engine builds the optimizer from the config: the family's learning rate etc.
        self.family_notes = apply_family_defaults(config, get_family(config.model.name, self.name).defaults)

    def prepare(self, manifest: Any, fixed_splits: Any = None, classes: list[str] | None = None) -> Any:
        data = super().prepare(manifest, fixed_splits, classes)
        data.notes[:0] = self.family_notes
        return data

    def step(self, model: nn.Module, batch: Any, device: torch.device, train: bool) -> tuple[Any, dict, Any, Any]:
        x, targets = batch
        x = x.to(device, non_blocking=True)
        moved = [{k: v.to(device) for k, v in t.items()} for t in targets]
        core = _core(model)
        if hasattr(core, "decode"):  # datakit's own: raw maps, then its loss and decoding
            maps = model(x)
            parts = core.loss(maps, moved)
            outputs = core.decode(maps) if not train else torch.zeros(0)
            return parts["loss"], parts, outputs, targets
        # torchvision: named losses in training mode, detections in eval mode (labels 1-based there)
        for t in moved:
            t["labels"] = t["labels"] + 1
        if train:
            parts = model(list(x), moved)
            loss = sum(parts.values())
            return loss, {"loss": loss, **parts}, torch.zeros(0), targets
        detections = model(list(x))
        outputs = [{**d, "labels": d["labels"] - 1} for d in detections]  # Mask R-CNN's masks pass through
        nan = torch.tensor(float("nan"))
        return nan, {"loss": nan}, outputs, targets

    def evaluator(self, data: Any) -> DetectionEvaluator:
        return DetectionEvaluator(len(data.classes))

    def detections(self, model: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        core = _core(model)
        if hasattr(core, "decode"):
            return core.decode(model(x))
        return [{**d, "labels": d["labels"] - 1} for d in model(list(x))]


TASK = DetectionTask
