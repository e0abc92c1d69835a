"""Semantic segmentation: a class for every pixel (all objects of a class are one segment).

Data: ``datakit.tasks.maskdata`` (class maps from semantic PNGs or rasterized instance masks, one
internal background class, 255 = ignore). Models come from ``datakit.models`` under
("semantic_segmentation", name): the configurable U-Net (``unet``, also the default ``cnn``) and
torchvision's segmentation models from scratch; each maps N x C x H x W to class logits at the
input size. Loss: cross-entropy with ignore index 255, plus ``train.dice_weight`` x soft Dice
(over the classes, ignore pixels left out) when set. Metrics: ``miou``, ``dice``,
``pixel_accuracy`` from one pixel confusion matrix, by ``datakit.metrics.segmentation`` (the same
code that scores ``datakit eval --predictions`` mask folders); background counts as a class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datakit import distributed
from datakit.data import Preprocess
from datakit.models import build_model, get_family
from datakit.tasks import maskdata
from datakit.tasks.base import Task
from datakit.tasks.localization import LocalizationTask

IGNORE = maskdata.IGNORE


class SegmentationEvaluator:
    """A pass's pixel confusion matrix (true class x predicted class); metrics at ``compute``."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = list(classes)
        k = len(classes)
        self.matrix = np.zeros((k, k + 1), dtype=np.int64)

    def update(self, outputs: Any, targets: Any) -> None:
        from datakit.metrics.segmentation import confusion

        pred = outputs.cpu().numpy()
        true = targets.cpu().numpy()
        self.matrix += confusion(list(zip(true, pred)), list(range(len(self.classes))))

    def reduce(self, ctx: distributed.Context) -> None:
        if ctx.active:
            summed = distributed.all_sum(ctx, [float(v) for v in self.matrix.ravel()])
            self.matrix = np.asarray(summed, dtype=np.int64).reshape(self.matrix.shape)

    def details(self) -> dict[str, Any]:
        from datakit.metrics.segmentation import metrics_from_confusion

        return metrics_from_confusion(self.matrix, self.classes)

    def compute(self) -> dict[str, float]:
        found = self.details()
        return {k: float("nan") if found[k] is None else float(found[k]) for k in ("miou", "dice", "pixel_accuracy")}


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean over classes of soft Dice; pixels marked ignore take no part."""
    k = logits.shape[1]
    valid = (target != IGNORE).unsqueeze(1).float()
    probabilities = torch.softmax(logits, dim=1) * valid
    one_hot = F.one_hot(target.clamp(max=k - 1) * (target != IGNORE), k).permute(0, 3, 1, 2).float() * valid
    dims = (0, 2, 3)
    intersection = (probabilities * one_hot).sum(dims)
    total = probabilities.sum(dims) + one_hot.sum(dims)
    return 1 - ((2 * intersection + 1.0) / (total + 1.0)).mean()


class SegmentationTask(Task):
    name = "semantic_segmentation"
    metrics = ("miou", "dice", "pixel_accuracy")

    def __init__(self, config: Any) -> None:
        from datakit.tasks.detection import apply_family_defaults

        super().__init__(config)
        # before the engine builds the optimizer: the family's own defaults on keys left at datakit's
        self.family_notes = apply_family_defaults(config, get_family(config.model.name, self.name).defaults)

    def prepare(self, manifest: Any, fixed_splits: Any = None, classes: list[str] | None = None) -> Any:
        data = maskdata.prepare_masks(manifest, self.config.data, self.config.seed, fixed_splits, classes)
        data.notes[:0] = self.family_notes
        return data

    # the box tasks' rule: data.image_size and data.resize; channels from the family or the images
    preprocess = LocalizationTask.preprocess

    def datasets(self, data: maskdata.MaskSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                 notes: list[str]) -> dict[str, Any]:
        self.cache = True
        return maskdata.build_datasets(self, data, preprocess, display, fill_normalization, notes)

    def build_model(self, preprocess: Preprocess, data: maskdata.MaskSplits) -> nn.Module:
        return build_model(self.config.model, preprocess.channels, len(data.classes),
                           (preprocess.height, preprocess.width), task=self.name)

    def setup_loss(self, data: maskdata.MaskSplits, device: torch.device) -> None:
        self.dice_weight = float(self.config.train.dice_weight)

    def step(self, model: nn.Module, batch: Any, device: torch.device,
             train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        x, y = batch
        if train and len(x) == 1:
            # a last batch of one image: batch norm after global pooling (DeepLabV3's ASPP) cannot train
            # on a single value per channel; the image twice gives the same gradient
            x, y = x.repeat(2, 1, 1, 1), y.repeat(2, 1, 1)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x).float()
        smoothing = self.config.train.label_smoothing if train else 0.0
        parts = {"ce": F.cross_entropy(logits, y, ignore_index=IGNORE, label_smoothing=smoothing)}
        loss = parts["ce"]
        if self.dice_weight:
            parts["dice"] = dice_loss(logits, y)
            loss = loss + self.dice_weight * parts["dice"]
        return loss, {"loss": loss, **parts}, logits.argmax(1).to(torch.uint8), y

    def evaluator(self, data: maskdata.MaskSplits) -> SegmentationEvaluator:
        return SegmentationEvaluator(data.classes)

    def diagnose(self, train: SegmentationEvaluator, val: SegmentationEvaluator,
                 data: maskdata.MaskSplits) -> dict[str, str]:
        """Every pixel predicted as one class (usually background): the model has not started to learn."""
        predicted = val.matrix[:, :-1].sum(axis=0)
        if predicted.sum() and predicted.max() == predicted.sum() and len(data.classes) > 1:
            only = data.classes[int(predicted.argmax())]
            return {"one_class": f"every validation pixel is predicted '{only}'; the model has not started to "
                                 "learn the objects (try a higher optim.lr, more epochs, or train.dice_weight 0.5 for "
                                 "small classes)"}
        return {}

    # ---- a trained run

    def segment(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities N x classes x H x W for a normalized batch."""
        return torch.softmax(model(x).float(), dim=1)

    def run_figures(self, model: nn.Module, datasets: dict[str, Any], data: maskdata.MaskSplits, run_dir: Any,
                    device: torch.device) -> dict[str, str]:
        """The best checkpoint's ``overlays.png`` and ``class_iou.png`` on test (val without a test split)."""
        from pathlib import Path

        from datakit.tasks.segrun import run_figures

        split = "test" if "test" in datasets else "val"
        return run_figures(model, self, datasets[split], self.evaluator(data), data.classes, Path(run_dir), device,
                           split)

    @staticmethod
    def outputs_to_numpy(outputs: torch.Tensor) -> np.ndarray:
        return torch.softmax(outputs.float(), dim=1).cpu().numpy()


TASK = SegmentationTask
