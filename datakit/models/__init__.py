"""Model families by (task, name), like timm's ``create_model(name)`` over a registry.

Adding a family: one module with a ``build`` function, one entry in ``REGISTRY`` under the task it
serves. A classification builder takes (model config, input channels, number of classes,
(height, width)) and returns an ``nn.Module`` mapping NxCxHxW float images to N x classes logits.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError
from datakit.models import centernet, cnn, localizer, torchvision_detectors, torchvision_models
from datakit.models import maskhead, torchvision_maskrcnn
from datakit.models import torchvision_segmentation, unet  # semantic segmentation

Builder = Callable[[ModelConfig, int, int, "tuple[int, int]"], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    build: Builder
    channels: int | None  # input channels the family needs; None: any (grayscale stays 1 channel)
    # config keys the family trains best with, used where the config leaves datakit's defaults
    defaults: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[tuple[str, str], ModelFamily] = {
    ("classification", "cnn"): ModelFamily(cnn.build, channels=None),
    **{("classification", name): ModelFamily(torchvision_models.builder(name), channels=3)
       for name in torchvision_models.NAMES},
    ("localization", "cnn"): ModelFamily(localizer.build, channels=None),
    ("detection", "cnn"): ModelFamily(centernet.build, channels=None),
    **{("detection", name): ModelFamily(torchvision_detectors.builder(name), channels=3,
                                        defaults=torchvision_detectors.DEFAULTS[name])
       for name in torchvision_detectors.NAMES},
    ("instance_segmentation", "cnn"): ModelFamily(maskhead.build, channels=None),
    **{("instance_segmentation", name): ModelFamily(torchvision_maskrcnn.builder(name), channels=3,
                                                    defaults=torchvision_maskrcnn.DEFAULTS[name])
       for name in torchvision_maskrcnn.NAMES},
    # semantic segmentation: the U-Net (also under the default name `cnn`), torchvision's models
    ("semantic_segmentation", "unet"): ModelFamily(unet.build, channels=None, defaults=unet.DEFAULTS),
    ("semantic_segmentation", "cnn"): ModelFamily(unet.build, channels=None, defaults=unet.DEFAULTS),
    **{("semantic_segmentation", name): ModelFamily(torchvision_segmentation.builder(name), channels=3)
       for name in torchvision_segmentation.NAMES},
}

# the classification families by name (what `model.name` means for the default task)
MODELS: dict[str, ModelFamily] = {name: family for (task, name), family in REGISTRY.items()
                                  if task == "classification"}


def model_names(task: str = "classification") -> list[str]:
    return [name for (t, name) in REGISTRY if t == task]


def get_family(name: str, task: str = "classification") -> ModelFamily:
    if (task, name) not in REGISTRY:
        known = model_names(task)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known models: {', '.join(known) or 'none yet'}"
        for_task = "" if task == "classification" else f" for task {task}"
        raise DatakitError(f"unknown model '{name}'{for_task}{hint}")
    return REGISTRY[(task, name)]


def build_model(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int],
                task: str = "classification") -> nn.Module:
    return get_family(config.name, task).build(config, in_channels, num_classes, image_size)


__all__ = ["MODELS", "REGISTRY", "ModelFamily", "build_model", "get_family", "model_names"]
