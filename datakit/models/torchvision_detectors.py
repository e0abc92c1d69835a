"""torchvision detectors, built from scratch: ``weights=None, weights_backbone=None`` (nothing is
ever downloaded; ``model.weights`` reads a local file).

Each family carries its own defaults (``DEFAULTS``), applied by the detection task when the config
leaves those keys at datakit's global defaults: a learning rate the family trains at from scratch,
gradient clipping and warm-up where it needs them (FCOS diverges at AdamW 1e-3 without them), and
its input size. Their internal resize is set to the input size (torchvision defaults to 800 px,
far too large for small images), and their own normalization is switched off: datakit's
preprocessing has normalized the batch already.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from datakit.config import ModelConfig

# name: config keys used when the config leaves them at datakit's defaults
DEFAULTS: dict[str, dict[str, Any]] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": {"optim.lr": 1e-3, "data.image_size": 320, "train.grad_clip": 10.0},
    "fasterrcnn_mobilenet_v3_large_fpn": {"optim.lr": 1e-3, "data.image_size": 512, "train.grad_clip": 10.0},
    "retinanet_resnet50_fpn": {"optim.lr": 1e-4, "data.image_size": 512, "train.grad_clip": 1.0,
                               "schedule.warmup_epochs": 1},
    # FCOS from scratch diverges at 1e-3 (issue 17's calibration): a lower rate, clipping and warm-up
    "fcos_resnet50_fpn": {"optim.lr": 1e-4, "data.image_size": 512, "train.grad_clip": 1.0,
                          "schedule.warmup_epochs": 2},
    "ssdlite320_mobilenet_v3_large": {"optim.lr": 1e-3, "data.image_size": 320, "train.grad_clip": 10.0},
}
NAMES = tuple(DEFAULTS)


def builder(name: str):  # noqa: ANN201 - returns a model builder bound to one family name
    def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        from torchvision.models import get_model

        height, width = image_size
        # class 0 is the background (Faster R-CNN, SSD) or unused (RetinaNet, FCOS): datakit's
        # class indices are shifted by one on the way in and out (datakit.tasks.detection)
        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes + 1,
                                  "image_mean": [0.0] * 3, "image_std": [1.0] * 3}
        if name.startswith("ssdlite"):
            # SSDlite's builder fixes its input at 320 x 320 (a size argument is refused): its resize
            # step is replaced by one to the input size; anchors follow the feature maps, any size works
            from torchvision.models.detection.transform import GeneralizedRCNNTransform

            model = get_model(name, **kwargs)
            model.transform = GeneralizedRCNNTransform(min(height, width), max(height, width), [0.0] * 3, [1.0] * 3,
                                                       size_divisible=1, fixed_size=(width, height))
            return model
        kwargs.update(min_size=min(height, width), max_size=max(height, width))
        return get_model(name, **kwargs)

    return build
