"""Instance segmentation: the box, class and mask of every object in an image.

Asked for with ``task: instance`` (``auto`` picks detection for a manifest with boxes, even when
they have masks). Models come from ``datakit.models`` under ("instance_segmentation", name): the
light ``cnn`` (the detector of ``datakit.models.centernet`` plus a mask head,
``datakit.models.maskhead``; the CPU default) and torchvision's Mask R-CNN from scratch
(``maskrcnn_resnet50_fpn``, ``maskrcnn_mobilenet_v3_large_fpn``). Both give, per image, boxes,
scores, labels and masks (probabilities at the input size); the step and the detections are
detection's (``DetectionTask``), which hands the masks through.

Data: ``datakit.tasks.instancedata`` (masks kept as RLE; images without objects are negatives).
Metrics: COCO ``segm`` (``mask_map``, ``mask_map50``) and ``bbox`` (``map``, ``map50``) from
``datakit.metrics.coco`` on the validation and test passes; the training pass is not decoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from datakit.tasks import instancedata
from datakit.tasks.detection import DetectionEvaluator, DetectionTask

MASK_THRESHOLD = 0.5  # a pixel belongs to the object when its mask probability reaches this


def binary_masks(det: dict[str, torch.Tensor]) -> np.ndarray:
    """A detection dict's masks as (K, H, W) uint8 (torchvision's Mask R-CNN gives K x 1 x H x W)."""
    masks = det["masks"]
    if masks.dim() == 4:
        masks = masks[:, 0]
    return (masks.float() >= MASK_THRESHOLD).to(torch.uint8).cpu().numpy()


class InstanceEvaluator(DetectionEvaluator):
    """Every image's true objects and detections (boxes and mask RLEs) over a pass; COCO bbox and
    segm mAP at ``compute``."""

    def update(self, outputs: Any, targets: Any) -> None:
        if not isinstance(outputs, list):  # a training pass: nothing decoded
            return
        for det, target in zip(outputs, targets):
            self.images.append((target["boxes"].cpu().numpy(), target["labels"].cpu().numpy(),
                                instancedata.encode(target["masks"].cpu().numpy()),
                                det["boxes"].float().cpu().numpy(), det["scores"].float().cpu().numpy(),
                                det["labels"].cpu().numpy(), instancedata.encode(binary_masks(det))))

    def compute(self) -> dict[str, float]:
        from datakit.geometry import rle_areas
        from datakit.metrics import coco

        nan = float("nan")
        if not self.images:
            return {"mask_map": nan, "mask_map50": nan, "map": nan, "map50": nan}

        def instances(rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None, list]]) -> coco.Instances:
            image = np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b, _, _, _ in rows])
            boxes = np.concatenate([b for _, b, _, _, _ in rows]).reshape(-1, 4).astype(np.float64)
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            category = np.concatenate([c for _, _, c, _, _ in rows]).astype(np.int64) + 1
            score = None if rows[0][3] is None else np.concatenate([s for _, _, _, s, _ in rows]).astype(np.float64)
            rles = [r for *_, masks in rows for r in masks]
            area = rle_areas(rles)
            n = len(image)
            return coco.Instances(image, category, xywh, area, np.arange(1, n + 1), iscrowd=np.zeros(n, dtype=np.int64),
                                  score=score, rles=rles)

        gt = instances([(i, g[0], g[1], None, g[2]) for i, g in enumerate(self.images)])
        dt = instances([(i, g[3], g[5], g[4], g[6]) for i, g in enumerate(self.images)])
        values: dict[str, float | None] = {}
        for iou_type, prefix in (("segm", "mask_"), ("bbox", "")):
            result = coco.evaluate(gt, dt, range(len(self.images)), range(1, self.k + 1), iou_type)
            values[f"{prefix}map"] = coco.stat(result, True)
            values[f"{prefix}map50"] = coco.stat(result, True, 0.5)
        # no ground truth at all (a pass of negatives only): undefined, not a score of 0
        return {k: nan if v is None else float(v) for k, v in values.items()}


class InstanceTask(DetectionTask):
    name = "instance_segmentation"
    metrics = ("mask_map", "mask_map50", "map", "map50")

    def prepare(self, manifest: Any, fixed_splits: Any = None,
                classes: list[str] | None = None) -> instancedata.InstanceSplits:
        data = instancedata.prepare_instances(manifest, self.config.data, self.config.seed, self.name, fixed_splits,
                                              classes)
        data.notes[:0] = self.family_notes
        return data

    def datasets(self, data: instancedata.InstanceSplits, preprocess: Any, display: Any, fill_normalization: bool,
                 notes: list[str]) -> dict[str, Any]:
        self.cache = True
        return instancedata.build_datasets(self, data, preprocess, display, fill_normalization, notes)

    def evaluator(self, data: Any) -> InstanceEvaluator:
        return InstanceEvaluator(len(data.classes))


TASK = InstanceTask
