"""torchvision semantic segmentation models, built from scratch: ``weights=None,
weights_backbone=None`` (nothing is ever downloaded; ``model.weights`` reads a local file).

torchvision's models return ``{"out": logits}`` (plus ``aux`` when asked); datakit builds them
without the auxiliary head and unwraps ``out``, so every segmentation model maps N x 3 x H x W to
N x classes x H x W logits. Their input is datakit's normalized batch.
"""

from __future__ import annotations

import torch
from torch import nn

from datakit.config import ModelConfig

NAMES = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50", "deeplabv3_resnet50")


class Unwrapped(nn.Module):
    """A torchvision segmentation model whose forward returns the ``out`` logits alone."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def builder(name: str):  # noqa: ANN201 - returns a model builder bound to one family name
    def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        from torchvision.models import get_model

        kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if not name.startswith("lraspp"):
            kwargs["aux_loss"] = False
        return Unwrapped(get_model(name, **kwargs))

    return build
