"""torchvision families, built from scratch (``weights=None``): nothing is ever downloaded.

Pretrained weights come only from a local file (``model.weights``), loaded by the trainer.

Their ImageNet stems shrink a 224 px image 4x before the first block (a 7x7 stride-2
convolution and a stride-2 max-pool, or a stride-2 convolution); on a 32 or 64 px image that
throws most of the picture away (resnet18 reached 0.61 on 64 px shapes against 0.995 for the small
cnn). ``model.stem: small`` (what ``auto`` picks under ``SMALL_INPUT`` px) makes the stem
CIFAR-style: the first convolution 3x3, the stem's max-pool removed, and the stride chosen so the
first block sees about ``FIRST_BLOCK_SIDE`` px (CIFAR's operating point): stride 1 under 48 px,
stride 2 from 48 px (a 64 px image enters the first block at 32 px, where the ImageNet stem
leaves 16). A stride-1 stem on 64 px would cost 4x a CIFAR ResNet per image for little gain:
the last map would be 8x8 where 4x4 already holds the shapes.
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
SMALL_INPUT = 128  # below this side the ImageNet stem leaves too little of the image
FIRST_BLOCK_SIDE = 32  # the small stem's stride brings the input to about this side


def stem_stride(side: int) -> int:
    """The small stem's stride for a ``side`` px input: 1 under 48 px, 2 from there (to ``SMALL_INPUT``)."""
    return max(1, min(2, round(side / FIRST_BLOCK_SIDE)))


def small_stem(model: nn.Module, stride: int = 1) -> nn.Module:
    """The model with its stem made CIFAR-style, in place: the first convolution becomes 3x3 at
    ``stride`` (same channels), and a max-pool that comes before the first block is removed."""
    first_conv = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            first_conv = name
            break
    assert first_conv is not None, "a torchvision family without a convolution"
    conv = model.get_submodule(first_conv)
    replacement = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=stride, padding=1, bias=conv.bias is not None)
    _set(model, first_conv, replacement)
    # the stem's max-pool: resnet `maxpool`, shufflenet `maxpool`, densenet `features.pool0`
    for name in ("maxpool", "features.pool0"):
        try:
            if isinstance(model.get_submodule(name), nn.MaxPool2d):
                _set(model, name, nn.Identity())
        except AttributeError:
            continue
    return model


def _set(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent, _, last = dotted.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, last, module)


def uses_small_stem(config: ModelConfig, image_size: tuple[int, int]) -> bool:
    return config.stem == "small" or (config.stem == "auto" and min(image_size) < SMALL_INPUT)


def builder(name: str):  # noqa: ANN201 - returns a model builder bound to one family name
    def build(config: ModelConfig, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        from torchvision.models import get_model

        model = get_model(name, weights=None, num_classes=num_classes)
        if not uses_small_stem(config, image_size):
            return model
        return small_stem(model, stem_stride(min(image_size)))

    return build
