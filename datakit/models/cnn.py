"""`cnn`: a convolutional network built entirely from config (``model.conv``, ``model.pool``,
``model.head``).

Blocks of [conv -> batch norm -> activation] x convs_per_block, each followed by pooling, then
global pooling or flatten, then dense layers with dropout, then the output layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError

ACTIVATIONS: dict[str, Any] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
}


class AvgMaxPool(nn.Module):
    """Global average and global max pooling side by side (2x the channels): the average sees how
    much of the image holds a feature, the max whether a small object somewhere has it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


def global_pool(pooling: str) -> nn.Module:
    """The head's pooling (``model.head.pooling``) as a module from feature maps to vectors."""
    if pooling == "flatten":
        return nn.Flatten()
    if pooling == "global_avg_max":
        return AvgMaxPool()
    return nn.Sequential(nn.AdaptiveAvgPool2d(1) if pooling == "global_avg" else nn.AdaptiveMaxPool2d(1), nn.Flatten())


def _per_block(value: Any, blocks: int) -> list[Any]:
    return list(value) if isinstance(value, list) else [value] * blocks


def _padding(value: int | str, kernel: int) -> int:
    if value == "same":
        return kernel // 2  # equals "same" for odd kernels at stride 1, and works at any stride
    if value == "valid":
        return 0
    if isinstance(value, str):
        raise DatakitError(f"config key 'model.conv.padding': {value!r} is not same, valid or a number")
    return int(value)


def conv_blocks(config: ModelConfig, in_channels: int) -> tuple[list[nn.Sequential], list[int]]:
    """The conv blocks of ``model.conv``/``model.pool`` (each one Sequential) and their output channels.

    Shared by the classifier below and the localization and detection models, so one set of conv
    knobs (filters, kernel, stride, padding, pooling) means the same backbone for every task."""
    conv, pool = config.conv, config.pool
    blocks = len(conv.filters)
    kernels = _per_block(conv.kernel_size, blocks)
    strides = _per_block(conv.stride, blocks)
    paddings = _per_block(conv.padding, blocks)
    out: list[nn.Sequential] = []
    widths: list[int] = []
    channels = in_channels
    for b, filters in enumerate(conv.filters):
        layers: list[nn.Module] = []
        for i in range(conv.convs_per_block):
            # only the first conv of a block strides; the rest keep its resolution
            stride = strides[b] if i == 0 else 1
            layers.append(nn.Conv2d(channels, filters, kernels[b], stride=stride,
                                    padding=_padding(paddings[b], kernels[b]), bias=not conv.batch_norm))
            if conv.batch_norm:
                layers.append(nn.BatchNorm2d(filters))
            layers.append(ACTIVATIONS[conv.activation]())
            channels = filters
        if pool.type != "none":
            pool_cls = nn.MaxPool2d if pool.type == "max" else nn.AvgPool2d
            layers.append(pool_cls(pool.kernel_size, stride=pool.stride or pool.kernel_size, padding=pool.padding))
        out.append(nn.Sequential(*layers))
        widths.append(channels)
    return out, widths


class ConfigurableCNN(nn.Module):
    def __init__(self, config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        conv, head = config.conv, config.head
        blocks, _ = conv_blocks(config, in_channels)
        # one flat Sequential: the state-dict keys stay those of runs saved before blocks existed
        layers: list[nn.Module] = [layer for block in blocks for layer in block]
        self.features = nn.Sequential(*layers)
        self.pool = global_pool(head.pooling)
        width = self._feature_width(in_channels, image_size)
        dense: list[nn.Module] = []
        for units in head.dense:
            if head.dropout:
                dense.append(nn.Dropout(head.dropout))
            dense += [nn.Linear(width, units), ACTIVATIONS[conv.activation]()]
            width = units
        if head.dropout:
            dense.append(nn.Dropout(head.dropout))
        dense.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*dense)

    def _feature_width(self, in_channels: int, image_size: tuple[int, int]) -> int:
        """Length of the vector the head receives, found by running a blank image through."""
        self.eval()
        try:
            with torch.no_grad():
                out = self.pool(self.features(torch.zeros(1, in_channels, *image_size)))
        except RuntimeError as exc:
            raise DatakitError(
                f"model 'cnn': {len(self.features)} layers shrink a {image_size[0]}x{image_size[1]} image to "
                f"nothing ({str(exc).splitlines()[0]}); use fewer conv blocks, less stride/pooling or a larger "
                "data.image_size") from None
        finally:
            self.train()
        if out.shape[1] == 0:
            raise DatakitError(f"model 'cnn': no features left for a {image_size[0]}x{image_size[1]} image; "
                               "use fewer conv blocks or a larger data.image_size")
        return int(out.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return ConfigurableCNN(config, in_channels, num_classes, image_size)
