"""`cnn` for instance segmentation: the light detector (``datakit.models.centernet``) plus a mask head.

The detector is used as it is (composed, not copied): its ``forward``, ``loss`` and ``decode``
give the boxes. A forward pre-hook on its heatmap head keeps the feature map the heads read
(stride ``detector.stride``), so the mask head sees the same features without the detector
knowing about masks.

The mask head is Mask R-CNN's, made small for a CPU: per object, ``roi_align`` takes a
``ROI_SIZE`` x ``ROI_SIZE`` window of the features and a ``MASK_SIZE`` x ``MASK_SIZE`` window of
the input image itself (its pixels give the sharp edges the stride-4 features cannot), a few
convolutions fuse them and predict one ``MASK_SIZE`` mask logit map per class; the object's class
picks its map. In training the windows are the true boxes, jittered (the detector's boxes are
never exact); the target is the true mask resampled into the window (torchvision's
``project_masks_on_boxes``), the loss binary cross-entropy. At inference the windows are the
detections, and each mask is pasted back into the image (``paste_masks_in_image``).

``decode`` returns, per image, ``boxes``, ``scores``, ``labels`` and ``masks``: (K, H, W) mask
probabilities at the input size, the form torchvision's Mask R-CNN gives too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from datakit.config import ModelConfig
from datakit.models.centernet import CenterNet

ROI_SIZE = 14
MASK_SIZE = 28
HEAD_WIDTH = 64
FINE_WIDTH = 32
MASK_WEIGHT = 1.0
JITTER = 0.1  # training windows: true boxes moved and scaled by up to this fraction of their size
MAX_MASKS = 30  # masks for the best detections of an image only (a mask costs far more than a box)
MASK_SCORE = 0.05  # and only for detections at least this confident


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class MaskHead(nn.Module):
    """Per-window mask logits (K x classes x MASK_SIZE x MASK_SIZE) from features and image pixels."""

    def __init__(self, feature_channels: int, image_channels: int, num_classes: int, stride: float) -> None:
        super().__init__()
        self.stride = stride
        self.coarse = nn.Sequential(_conv(feature_channels, HEAD_WIDTH), _conv(HEAD_WIDTH, HEAD_WIDTH))
        self.up = nn.ConvTranspose2d(HEAD_WIDTH, FINE_WIDTH, 2, stride=2)
        self.fine = nn.Sequential(_conv(FINE_WIDTH + image_channels, FINE_WIDTH), _conv(FINE_WIDTH, FINE_WIDTH),
                                  nn.Conv2d(FINE_WIDTH, num_classes, 1))

    def forward(self, features: torch.Tensor, image: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import roi_align

        coarse = roi_align(features, rois, ROI_SIZE, spatial_scale=1.0 / self.stride, sampling_ratio=2,
                           aligned=True)
        pixels = roi_align(image, rois, MASK_SIZE, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        x = F.relu(self.up(self.coarse(coarse)))
        return self.fine(torch.cat([x, pixels], dim=1))


def _rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """torchvision's ROI form: K x 5 (image index in the batch, x0, y0, x1, y1)."""
    parts = [torch.cat([torch.full((len(b), 1), float(i), device=b.device, dtype=b.dtype), b], dim=1)
             for i, b in enumerate(boxes)]
    return torch.cat(parts) if parts else torch.zeros(0, 5)


def _jitter(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if not len(boxes):
        return boxes
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + (torch.rand_like(wh) * 2 - 1) * JITTER * wh
    wh = wh * (1 + (torch.rand_like(wh) * 2 - 1) * JITTER)
    out = torch.cat([centre - wh / 2, centre + wh / 2], dim=1)
    h, w = size
    return torch.stack([out[:, 0].clamp(0, w), out[:, 1].clamp(0, h), out[:, 2].clamp(0, w), out[:, 3].clamp(0, h)],
                       dim=1)


def mask_targets(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The true masks (N x H x W) resampled into their windows (N x MASK_SIZE x MASK_SIZE), 0/1."""
    from torchvision.ops import roi_align

    rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], dim=1)
    return (roi_align(masks[:, None].float(), rois, MASK_SIZE, spatial_scale=1.0, sampling_ratio=2,
                      aligned=True)[:, 0] >= 0.5).float()


class InstanceCenterNet(nn.Module):
    """The light detector and a mask head; ``forward`` gives the detector's maps plus what the mask
    head needs (the features and the input), ``loss`` and ``decode`` read them."""

    def __init__(self, config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.detector = CenterNet(config, in_channels, num_classes, image_size)
        self.image_size = image_size
        self._features: torch.Tensor | None = None
        # the heatmap head reads the detector's final feature map: its input is what the masks use
        feature_channels = next(m for m in self.detector.heatmap.modules() if isinstance(m, nn.Conv2d)).in_channels
        self.detector.heatmap.register_forward_pre_hook(self._keep_features)
        self.mask_head = MaskHead(feature_channels, in_channels, num_classes, self.detector.stride)

    def _keep_features(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._features = inputs[0]

    @property
    def stride(self) -> float:
        return self.detector.stride

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = dict(self.detector(x))
        maps["features"] = self._features
        maps["image"] = x
        self._features = None  # nothing held between calls
        return maps

    def loss(self, maps: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        parts = self.detector.loss({k: v for k, v in maps.items() if k not in ("features", "image")}, targets)
        boxes = [t["boxes"].float() for t in targets]
        if sum(len(b) for b in boxes) == 0:
            mask_loss = maps["features"].sum() * 0
        else:
            size = tuple(maps["image"].shape[2:])
            windows = [_jitter(b, size) if self.training else b for b in boxes]
            logits = self.mask_head(maps["features"].float(), maps["image"].float(), _rois(windows))
            labels = torch.cat([t["labels"] for t in targets])
            chosen = logits[torch.arange(len(labels), device=logits.device), labels]
            truth = torch.cat([mask_targets(t["masks"], w) for t, w in zip(targets, windows) if len(w)])
            mask_loss = F.binary_cross_entropy_with_logits(chosen, truth)
        total = parts["loss"] + MASK_WEIGHT * mask_loss
        return {**parts, "loss": total, "mask": mask_loss}

    @torch.no_grad()
    def decode(self, maps: dict[str, torch.Tensor], max_masks: int = MAX_MASKS,
               mask_score: float = MASK_SCORE) -> list[dict[str, torch.Tensor]]:
        """Per image: ``boxes`` (x0 y0 x1 y1 input pixels), ``scores``, ``labels`` and ``masks``
        (K x H x W probabilities at the input size) for the detections that get a mask."""
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        found = self.detector.decode({k: v for k, v in maps.items() if k not in ("features", "image")})
        h, w = maps["image"].shape[2:]
        chosen = []
        for det in found:
            keep = torch.nonzero(det["scores"] >= mask_score).flatten()[:max_masks]  # scores come sorted
            chosen.append({k: v[keep] for k, v in det.items()})
        total = sum(len(d["boxes"]) for d in chosen)
        if total:
            logits = self.mask_head(maps["features"].float(), maps["image"].float(),
                                    _rois([d["boxes"].float() for d in chosen]))
            labels = torch.cat([d["labels"] for d in chosen])
            probabilities = torch.sigmoid(logits[torch.arange(total, device=logits.device), labels])
        start = 0
        for det in chosen:
            n = len(det["boxes"])
            if n:
                pasted = paste_masks_in_image(probabilities[start:start + n, None], det["boxes"].float(), (h, w),
                                              padding=1)
                det["masks"] = pasted[:, 0]
            else:
                det["masks"] = torch.zeros(0, h, w, device=maps["image"].device)
            start += n
        return chosen


def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return InstanceCenterNet(config, in_channels, num_classes, image_size)


__all__: list[Any] = ["InstanceCenterNet", "MaskHead", "build", "mask_targets"]
