"""`cnn` for detection: a light anchor-free detector (CenterNet-style) on the configurable CNN.

The backbone is ``model.conv``/``model.pool``'s conv blocks (the same knobs as the classifier:
filters, kernel, stride, padding, pooling; ``model.head.dropout`` drops feature channels before
the heads). A top-down neck merges the deeper blocks into the feature map of stride ``STRIDE``
(or the finest the backbone has, if coarser), and three small heads predict there, per cell:

- a heatmap per class (focal loss against Gaussian peaks at object centres),
- the sub-cell offset of the centre (L1),
- the box width and height in cells (L1, plus a GIoU loss on the decoded box).

Decoding keeps the local maxima of the heatmap (3x3 max pooling, CenterNet's NMS), the top
``MAX_DETECTIONS`` per image, and a class-wise NMS for near-duplicate peaks. Boxes are ``x0, y0,
x1, y1`` in input pixels. ``forward`` returns the raw maps; ``loss`` and ``decode`` read them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError
from datakit.models.cnn import ACTIVATIONS, conv_blocks

STRIDE = 4
NECK = 64
HEAD = 32  # hidden width of each head: at stride 4 the heads' 3x3 convs were half the compute at 64
MAX_DETECTIONS = 100
SCORE_THRESHOLD = 0.01
NMS_IOU = 0.7
SIZE_WEIGHT = 0.1
GIOU_WEIGHT = 1.0


class CenterNet(nn.Module):
    def __init__(self, config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        act = config.conv.activation
        blocks, widths = conv_blocks(config, in_channels)
        self.blocks = nn.ModuleList(blocks)
        shapes = self._shapes(in_channels, image_size)
        strides = [image_size[0] / s[0] for s in shapes]
        # the neck starts at the finest block of stride >= STRIDE (or the deepest block)
        start = next((i for i, s in enumerate(strides) if s >= STRIDE - 1e-6), len(blocks) - 1)
        self.start = start
        self.stride = float(strides[start])
        self.lateral = nn.ModuleList(nn.Conv2d(w, NECK, 1) for w in widths[start:])
        self.smooth = nn.Sequential(nn.Conv2d(NECK, NECK, 3, padding=1, bias=False), nn.BatchNorm2d(NECK),
                                    ACTIVATIONS[act]())
        self.dropout = nn.Dropout2d(config.head.dropout) if config.head.dropout else nn.Identity()
        self.num_classes = num_classes

        def head(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(NECK, HEAD, 3, padding=1), ACTIVATIONS[act](), nn.Conv2d(HEAD, out, 1))

        self.heatmap = head(num_classes)
        self.offset = head(2)
        self.size = head(2)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - 0.1) / 0.1))  # start at a 0.1 prior

    def _shapes(self, in_channels: int, image_size: tuple[int, int]) -> list[tuple[int, int]]:
        shapes = []
        with torch.no_grad():
            x = torch.zeros(1, in_channels, *image_size)
            self.blocks.eval()
            try:
                for block in self.blocks:
                    x = block(x)
                    shapes.append((x.shape[2], x.shape[3]))
            except RuntimeError as exc:
                raise DatakitError(f"model 'cnn': the conv blocks shrink a {image_size[0]}x{image_size[1]} image "
                                   f"to nothing ({str(exc).splitlines()[0]}); use fewer blocks or less "
                                   "stride/pooling") from None
            finally:
                self.blocks.train()
        return shapes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        features = features[self.start:]
        top = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            top = F.interpolate(top, size=feature.shape[2:], mode="nearest") + lateral(feature)
        top = self.dropout(self.smooth(top))
        return {"heatmap": self.heatmap(top), "offset": self.offset(top), "size": self.size(top)}

    # ---- training

    def loss(self, maps: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Named losses (``loss`` is their weighted sum) for a batch of ``{"boxes", "labels"}``."""
        heat = maps["heatmap"].float()
        n, c, h, w = heat.shape
        device = heat.device
        boxes = torch.cat([t["boxes"] for t in targets]).to(device).float() / self.stride
        labels = torch.cat([t["labels"] for t in targets]).to(device)
        image = torch.cat([torch.full((len(t["labels"]),), i, dtype=torch.long) for i, t in enumerate(targets)])
        image = image.to(device)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
        cell = centre.floor().long()
        cell[:, 0].clamp_(0, w - 1)
        cell[:, 1].clamp_(0, h - 1)
        # Gaussian peaks, one per object, merged per (image, class) by their maximum
        target = torch.zeros(n * c, h, w, device=device)
        if len(boxes):
            sigma = (gaussian_radius(size[:, 1], size[:, 0]).clamp(min=0) * 2 + 1) / 6
            ys = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
            xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
            cx, cy = cell[:, 0].float().view(-1, 1, 1), cell[:, 1].float().view(-1, 1, 1)
            peaks = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma.view(-1, 1, 1) ** 2))
            with warnings.catch_warnings():  # "index_reduce() is in beta": stable in every torch we support
                warnings.simplefilter("ignore", UserWarning)
                target.index_reduce_(0, image * c + labels, peaks, "amax")
        target = target.view(n, c, h, w)
        focal = focal_loss(heat, target)
        if not len(boxes):
            zero = heat.sum() * 0
            parts = {"heatmap": focal, "offset": zero, "size": zero, "giou": zero}
        else:
            offset = maps["offset"].float()[image, :, cell[:, 1], cell[:, 0]]
            predicted_size = maps["size"].float()[image, :, cell[:, 1], cell[:, 0]]
            offset_loss = F.l1_loss(offset, centre - cell.float())
            size_loss = F.l1_loss(predicted_size, size)
            predicted_centre = cell.float() + offset
            half = predicted_size.clamp(min=0) / 2
            predicted = torch.cat([predicted_centre - half, predicted_centre + half], dim=1)
            from torchvision.ops import generalized_box_iou_loss

            giou = generalized_box_iou_loss(predicted, boxes, reduction="mean")
            parts = {"heatmap": focal, "offset": offset_loss, "size": size_loss, "giou": giou}
        total = parts["heatmap"] + parts["offset"] + SIZE_WEIGHT * parts["size"] + GIOU_WEIGHT * parts["giou"]
        return {"loss": total, **parts}

    # ---- inference

    @torch.no_grad()
    def decode(self, maps: dict[str, torch.Tensor], max_detections: int = MAX_DETECTIONS,
               score_threshold: float = SCORE_THRESHOLD) -> list[dict[str, torch.Tensor]]:
        """Per image: ``boxes`` (x0, y0, x1, y1 input pixels), ``scores``, ``labels`` (class index)."""
        from torchvision.ops import batched_nms

        heat = torch.sigmoid(maps["heatmap"].float())
        n, c, h, w = heat.shape
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        k = min(max_detections, c * h * w)
        # reshape, not view: with one input channel the maps come out non-contiguous
        scores, index = peaks.reshape(n, -1).topk(k)
        labels = index // (h * w)
        cells = index % (h * w)
        ys, xs = (cells // w).float(), (cells % w).float()
        out = []
        for i in range(n):
            offset = maps["offset"][i].float().reshape(2, -1)[:, cells[i]]
            size = maps["size"][i].float().reshape(2, -1)[:, cells[i]].clamp(min=0)
            cx, cy = xs[i] + offset[0], ys[i] + offset[1]
            boxes = torch.stack([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2], 1)
            boxes = boxes * self.stride
            keep = scores[i] > score_threshold
            b, s, lab = boxes[keep], scores[i][keep], labels[i][keep]
            kept = batched_nms(b, s, lab, NMS_IOU)
            out.append({"boxes": b[kept], "scores": s[kept], "labels": lab[kept]})
        return out


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's radius: the largest centre shift that keeps IoU >= ``min_overlap`` (per box, in cells)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalized by the number of object centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    negative = 1 - positive
    pos = torch.log(p) * (1 - p) ** 2 * positive
    neg = torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * negative
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return CenterNet(config, in_channels, num_classes, image_size)


__all__: list[Any] = ["CenterNet", "build", "focal_loss", "gaussian_radius"]
