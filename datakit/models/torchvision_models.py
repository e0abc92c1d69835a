"""torchvision families, built from scratch (``weights=None``): nothing is ever downloaded.

Pretrained weights come only from a local file (``model.weights``), loaded by the trainer.
"""

from __future__ import annotations

from torch import nn

from datakit.config import ModelConfig

NAMES = (
    "resnet18", "resnet34", "resnet50",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1",
    "convnext_tiny", "regnet_y_400mf", "shufflenet_v2_x1_0", "densenet121",
)


def builder(name: str):  # noqa: ANN201 - returns a model builder bound to one family name
    def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        from torchvision.models import get_model

        return get_model(name, weights=None, num_classes=num_classes)

    return build
