"""`unet` (task semantic_segmentation; also its `cnn`): a U-Net built from config, the CPU default.

The lecture's knobs mean the same as for the classifier: ``model.conv.filters`` gives the width of
each level (one level per entry, each halving the map), ``model.conv.kernel_size`` the kernel,
``model.conv.convs_per_block`` the convolutions per level, ``model.conv.batch_norm`` and
``activation`` what follows each, ``model.pool.type`` how a level halves the map (``max``, ``avg``,
or ``none`` for a stride-2 convolution), ``model.head.dropout`` dropout at the bottleneck and before
the last layer. The decoder mirrors the encoder: bilinear upsampling x2, the skip connection
concatenated, the level's convolutions (one level alone is a plain fully convolutional net).
Output: N x classes x H x W logits, at the input size (any size: the input is padded to a
multiple of 2^(levels-1) and the output cropped back).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError
from datakit.models.cnn import ACTIVATIONS

# the segmentation task's own defaults, used where the config leaves datakit's global ones
DEFAULTS: dict[str, Any] = {"model.conv.filters": [16, 32, 64, 128], "model.conv.convs_per_block": 2,
                            "model.head.dropout": 0.0}


def _block(config: ModelConfig, channels: int, filters: int, kernel: int) -> list[nn.Module]:
    conv = config.conv
    layers: list[nn.Module] = []
    for _ in range(max(1, conv.convs_per_block)):
        layers.append(nn.Conv2d(channels, filters, kernel, padding=kernel // 2, bias=not conv.batch_norm))
        if conv.batch_norm:
            layers.append(nn.BatchNorm2d(filters))
        layers.append(ACTIVATIONS[conv.activation]())
        channels = filters
    return layers


class UNet(nn.Module):
    def __init__(self, config: ModelConfig, in_channels: int, num_classes: int) -> None:
        super().__init__()
        filters = list(config.conv.filters)
        kernel = config.conv.kernel_size
        if isinstance(kernel, list):
            if len(set(kernel)) != 1:
                raise DatakitError("model.conv.kernel_size: the U-Net takes one kernel size for every level")
            kernel = kernel[0]
        if kernel % 2 == 0:
            raise DatakitError(f"model.conv.kernel_size {kernel}: the U-Net needs an odd kernel (same-size maps)")
        if not filters:
            raise DatakitError("model.conv.filters: a U-Net needs at least one level (e.g. [16, 32, 64, 128])")
        pool = config.pool.type
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        channels = in_channels
        for level, width in enumerate(filters):
            if level:
                if pool == "max":
                    self.down.append(nn.MaxPool2d(2))
                elif pool == "avg":
                    self.down.append(nn.AvgPool2d(2))
                else:  # a learnt downsampling
                    self.down.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
            self.encoder.append(nn.Sequential(*_block(config, channels, width, kernel)))
            channels = width
        self.bottleneck_dropout = nn.Dropout2d(config.head.dropout) if config.head.dropout else nn.Identity()
        self.decoder = nn.ModuleList()
        for width in reversed(filters[:-1]):
            self.decoder.append(nn.Sequential(*_block(config, channels + width, width, kernel)))
            channels = width
        self.head_dropout = nn.Dropout2d(config.head.dropout) if config.head.dropout else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.multiple = 2 ** (len(filters) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.down[level - 1](x)
            x = block(x)
            skips.append(x)
        x = self.bottleneck_dropout(x)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = self.classifier(self.head_dropout(x))
        return out[..., :h, :w]


def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return UNet(config, in_channels, num_classes)
