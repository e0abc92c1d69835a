"""torchvision Mask R-CNN for instance segmentation, built from scratch (``weights=None``,
``weights_backbone=None``: nothing is ever downloaded; ``model.weights`` reads a local file).

- ``maskrcnn_resnet50_fpn``: torchvision's own builder, by name.
- ``maskrcnn_mobilenet_v3_large_fpn``: torchvision has no such builder; it is assembled from
  torchvision's parts exactly as ``fasterrcnn_mobilenet_v3_large_fpn`` assembles its detector
  (``mobilenet_v3_large`` → ``_mobilenet_extractor`` with an FPN, its anchor generator), with
  ``MaskRCNN`` on top (its default mask head and ROI pooling over the FPN levels).

As for the torchvision detectors (``datakit.models.torchvision_detectors``): the internal resize
is set to the input size, torchvision's normalization is switched off (datakit's preprocessing
normalized the batch), class 0 is the background (datakit's classes shift by one), and each
family carries its own defaults (``DEFAULTS``) used where the config leaves datakit's.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from datakit.config import ModelConfig

DEFAULTS: dict[str, dict[str, Any]] = {
    "maskrcnn_resnet50_fpn": {"optim.lr": 1e-4, "data.image_size": 512, "train.grad_clip": 10.0,
                              "schedule.warmup_epochs": 1},
    "maskrcnn_mobilenet_v3_large_fpn": {"optim.lr": 1e-3, "data.image_size": 512, "train.grad_clip": 10.0},
}
NAMES = tuple(DEFAULTS)


def _common(num_classes: int, image_size: tuple[int, int]) -> dict[str, Any]:
    height, width = image_size
    return {"num_classes": num_classes + 1, "image_mean": [0.0] * 3, "image_std": [1.0] * 3,
            "min_size": min(height, width), "max_size": max(height, width)}


def mobilenet_v3_large_fpn(num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """Mask R-CNN on a MobileNet-v3-Large FPN backbone, every layer trainable, from scratch."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor

    backbone = _mobilenet_extractor(mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d), True, 6)
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3  # fasterrcnn_mobilenet_v3_large_fpn's
    aspect_ratios = ((0.5, 1.0, 2.0),) * len(anchor_sizes)
    return MaskRCNN(backbone, rpn_anchor_generator=AnchorGenerator(anchor_sizes, aspect_ratios),
                    **_common(num_classes, image_size))


def builder(name: str):  # noqa: ANN201 - returns a model builder bound to one family name
    def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        if name == "maskrcnn_mobilenet_v3_large_fpn":
            return mobilenet_v3_large_fpn(num_classes, image_size)
        from torchvision.models import get_model

        return get_model(name, weights=None, weights_backbone=None, **_common(num_classes, image_size))

    return build
