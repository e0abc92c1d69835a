"""Localization: the class and the box of the one object in an image (the largest, or the only one).

Model: the configurable CNN with a class head and a box head (``datakit.models.localizer``),
outputs N x (classes + 4): logits, then the box as ``cx, cy, w, h`` fractions of the input.
Loss: cross-entropy + smooth L1 on the box + GIoU loss. Metrics (``datakit.metrics.localization``'s
definitions): ``accuracy`` (class), ``box_iou`` (mean IoU), ``acc_iou50`` (class right and IoU >= 0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datakit import distributed
from datakit.data import Preprocess, auto_channels, image_size
from datakit.models import build_model
from datakit.tasks import boxdata
from datakit.tasks.base import Task

BOX_WEIGHT = 5.0  # smooth L1 on fractions of the image is small next to cross-entropy
GIOU_WEIGHT = 2.0


def cxcywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    half = box[:, 2:] / 2
    return torch.cat([box[:, :2] - half, box[:, :2] + half], dim=1)


class LocalizationEvaluator:
    """Sums over a pass of class hits, box IoU and hits at IoU >= 0.5."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.sums = [0.0, 0.0, 0.0, 0.0]  # correct, iou, correct & iou >= .5, images

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        from torchvision.ops import box_iou

        outputs, targets = outputs.float().cpu(), targets.float().cpu()
        correct = outputs[:, :self.k].argmax(1) == targets[:, 0].long()
        iou = box_iou(cxcywh_to_xyxy(outputs[:, self.k:]), targets[:, 1:]).diagonal() if len(targets) else \
            torch.zeros(0)
        self.sums[0] += float(correct.sum())
        self.sums[1] += float(iou.sum())
        self.sums[2] += float((correct & (iou >= 0.5)).sum())
        self.sums[3] += len(targets)

    def reduce(self, ctx: distributed.Context) -> None:
        if ctx.active:
            self.sums = distributed.all_sum(ctx, self.sums)

    def compute(self) -> dict[str, float]:
        n = max(self.sums[3], 1.0)
        return {"accuracy": self.sums[0] / n, "box_iou": self.sums[1] / n, "acc_iou50": self.sums[2] / n}


class LocalizationTask(Task):
    name = "localization"
    metrics = ("accuracy", "box_iou", "acc_iou50")
    one_object = True

    def prepare(self, manifest: Any, fixed_splits: Any = None, classes: list[str] | None = None) -> boxdata.BoxSplits:
        return boxdata.prepare_boxes(manifest, self.config.data, self.config.seed, self.name, self.one_object,
                                     fixed_splits, classes)

    def preprocess(self, data: boxdata.BoxSplits) -> Preprocess:
        from datakit.models import get_family

        height, width = image_size(self.config.data)
        family = get_family(self.config.model.name, self.name)
        channels = self.config.data.channels
        if channels == "auto":
            channels = family.channels or auto_channels(data.frames["train"])
        return Preprocess(height=height, width=width, channels=int(channels), resize=self.config.data.resize)

    def datasets(self, data: boxdata.BoxSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                 notes: list[str]) -> dict[str, Any]:
        self.cache = True
        return boxdata.build_datasets(self, data, preprocess, display, fill_normalization, notes,
                                      keep_one=self.one_object)

    def build_model(self, preprocess: Preprocess, data: boxdata.BoxSplits) -> nn.Module:
        return build_model(self.config.model, preprocess.channels, len(data.classes),
                           (preprocess.height, preprocess.width), task=self.name)

    def setup_loss(self, data: boxdata.BoxSplits, device: torch.device) -> None:
        self.num_classes = len(data.classes)

    def _targets(self, targets: list[dict[str, torch.Tensor]], size: tuple[int, int]) -> torch.Tensor:
        """N x 5: class index, then x0 y0 x1 y1 as fractions of the input."""
        h, w = size
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        rows = [torch.cat([t["labels"][:1].float(), t["boxes"][0] / scale]) for t in targets]
        return torch.stack(rows)

    def step(self, model: nn.Module, batch: Any, device: torch.device,
             train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        from torchvision.ops import generalized_box_iou_loss

        x, targets = batch
        y = self._targets(targets, (x.shape[2], x.shape[3]))
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x).float()
        k = self.num_classes
        labels, true_box = y[:, 0].long(), y[:, 1:]
        box = out[:, k:]
        true_cxcywh = torch.cat([(true_box[:, :2] + true_box[:, 2:]) / 2, true_box[:, 2:] - true_box[:, :2]], 1)
        parts = {
            "class": F.cross_entropy(out[:, :k], labels,
                                     label_smoothing=self.config.train.label_smoothing if train else 0.0),
            "box": F.smooth_l1_loss(box, true_cxcywh, beta=0.05),
            "giou": generalized_box_iou_loss(cxcywh_to_xyxy(box), true_box, reduction="mean"),
        }
        loss = parts["class"] + BOX_WEIGHT * parts["box"] + GIOU_WEIGHT * parts["giou"]
        return loss, {"loss": loss, **parts}, out, y

    def evaluator(self, data: Any) -> LocalizationEvaluator:
        return LocalizationEvaluator(len(data.classes))

    # ---- a trained run

    def detections(self, model: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The one object per image: box (x0 y0 x1 y1 input pixels), class and its probability."""
        out = model(x).float()
        k = out.shape[1] - 4
        probabilities = torch.softmax(out[:, :k], dim=1)
        score, label = probabilities.max(1)
        h, w = x.shape[2], x.shape[3]
        boxes = cxcywh_to_xyxy(out[:, k:]) * torch.tensor([w, h, w, h], dtype=torch.float32, device=out.device)
        return [{"boxes": boxes[i:i + 1], "scores": score[i:i + 1], "labels": label[i:i + 1]} for i in range(len(out))]

    @staticmethod
    def outputs_to_numpy(outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().cpu().numpy()


TASK = LocalizationTask
