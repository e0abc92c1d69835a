"""Model families by name. Adding a family: one module with a ``build`` function, one entry here.

A builder takes (model config, input channels, number of classes, (height, width)) and returns an
``nn.Module`` mapping NxCxHxW float images to N x classes logits.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError
from datakit.models import cnn, torchvision_models

Builder = Callable[[ModelConfig, int, int, "tuple[int, int]"], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    build: Builder
    channels: int | None  # input channels the family needs; None: any (grayscale stays 1 channel)


MODELS: dict[str, ModelFamily] = {
    "cnn": ModelFamily(cnn.build, channels=None),
    **{name: ModelFamily(torchvision_models.builder(name), channels=3) for name in torchvision_models.NAMES},
}


def get_family(name: str) -> ModelFamily:
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known models: {', '.join(MODELS)}"
        raise DatakitError(f"unknown model '{name}'{hint}")
    return MODELS[name]


def build_model(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return get_family(config.name).build(config, in_channels, num_classes, image_size)


__all__ = ["MODELS", "ModelFamily", "build_model", "get_family"]
