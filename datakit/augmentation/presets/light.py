"""``light``: flips, a little rotation, shift and zoom, mild brightness/contrast. Safe for almost any data."""

from __future__ import annotations

from typing import Any

from datakit.augmentation.presets.base import Preset, flips, rotation


def build(task: str, orientation: str) -> list[Any]:
    import albumentations as A

    return [
        *flips(orientation),
        A.Affine(rotate=rotation(orientation, 5), scale=(0.95, 1.05), translate_percent=(-0.03, 0.03), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
    ]


PRESET = Preset(
    name="light",
    summary="flips, ±5° rotation, ±5% zoom, ±3% shift, ±10% brightness/contrast",
    assumes="labels do not change under small geometric and photometric changes; objects stay mostly "
            "inside the image (objects with under half their box left are dropped)",
    build_transforms=build,
    min_visibility=0.5,
    min_area=4.0,
)
