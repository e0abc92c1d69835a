"""`cnn` for localization: the configurable CNN's conv blocks with a class head and a box head.

The class head is the classifier's (``model.head``: global pooling or flatten, dense layers,
dropout). The box head must know *where* things are, which global pooling throws away, so it
reads the feature map pooled to a small grid (``BOX_GRID`` x ``BOX_GRID``) and regresses the
object's centre and size as fractions of the image (sigmoid), i.e. ``cx, cy, w, h`` in [0, 1].
``forward`` returns one tensor: N x (classes + 4), the class logits then the box.
"""

from __future__ import annotations

import torch
from torch import nn

from datakit.config import ModelConfig
from datakit.errors import DatakitError
from datakit.models.cnn import ACTIVATIONS, conv_blocks, global_pool

BOX_GRID = 4


class Localizer(nn.Module):
    def __init__(self, config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        head, act = config.head, config.conv.activation
        blocks, _ = conv_blocks(config, in_channels)
        self.features = nn.Sequential(*blocks)
        with torch.no_grad():
            try:
                self.features.eval()
                shape = self.features(torch.zeros(1, in_channels, *image_size)).shape
            except RuntimeError as exc:
                raise DatakitError(f"model 'cnn': the conv blocks shrink a {image_size[0]}x{image_size[1]} image to "
                                   f"nothing ({str(exc).splitlines()[0]}); use fewer blocks or less stride/pooling") \
                    from None
            finally:
                self.features.train()
        self.pool = global_pool(head.pooling)
        width = int(self.pool(torch.zeros(shape)).shape[1])  # whatever the pooling: what the head receives
        layers: list[nn.Module] = []
        for units in head.dense:
            if head.dropout:
                layers.append(nn.Dropout(head.dropout))
            layers += [nn.Linear(width, units), ACTIVATIONS[act]()]
            width = units
        if head.dropout:
            layers.append(nn.Dropout(head.dropout))
        layers.append(nn.Linear(width, num_classes))
        self.class_head = nn.Sequential(*layers)
        grid = min(BOX_GRID, shape[2], shape[3])
        hidden = max(head.dense[-1] if head.dense else 128, 64)
        self.box_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(grid), nn.Flatten(),
            nn.Dropout(head.dropout) if head.dropout else nn.Identity(),
            nn.Linear(shape[1] * grid * grid, hidden), ACTIVATIONS[act](),
            nn.Linear(hidden, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        logits = self.class_head(self.pool(features))
        box = torch.sigmoid(self.box_head(features))
        return torch.cat([logits, box], dim=1)


def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    return Localizer(config, in_channels, num_classes, image_size)
