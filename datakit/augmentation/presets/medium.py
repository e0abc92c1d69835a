"""``medium``: the usual training augmentation: flips, rotation, zoom in and out, crop, brightness/contrast."""

from __future__ import annotations

from typing import Any

from datakit.augmentation.presets.base import Preset, flips, rotation


def build(task: str, orientation: str) -> list[Any]:
    import albumentations as A

    # a classification label belongs to the whole image: crop less so the object stays in view
    crop = 0.08 if task == "classification" else 0.15
    return [
        *flips(orientation),
        A.Affine(rotate=rotation(orientation, 15), scale=(0.85, 1.15), translate_percent=(-0.06, 0.06), p=0.7),
        A.CropAndPad(percent=(-crop, 0.0), keep_size=True, sample_independently=True, p=0.4),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.RandomGamma(gamma_limit=(85, 115), p=0.2),
    ]


PRESET = Preset(
    name="medium",
    summary="flips, ±15° rotation, ±15% zoom, ±6% shift, crop up to 15% (8% for classification), "
            "±20% brightness/contrast, gamma",
    assumes="the object that decides a classification label fills a good part of the image; for object "
            "tasks, an object with under 40% of its box left after a crop is dropped (and counted)",
    build_transforms=build,
    min_visibility=0.4,
    min_area=4.0,
)
