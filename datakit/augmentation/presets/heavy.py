"""``heavy``: strong geometry and colour, blur and noise: for small data sets and long training."""

from __future__ import annotations

from typing import Any

from datakit.augmentation.presets.base import Preset, flips, rotation


def build(task: str, orientation: str) -> list[Any]:
    import albumentations as A

    crop = 0.12 if task == "classification" else 0.25
    shear = (-4.0, 4.0) if orientation == "fixed" else (-8.0, 8.0)
    return [
        *flips(orientation),
        A.Affine(rotate=rotation(orientation, 30), scale=(0.7, 1.3), translate_percent=(-0.1, 0.1), shear=shear,
                 p=0.8),
        A.CropAndPad(percent=(-crop, 0.05), keep_size=True, sample_independently=True, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=0.7),
        A.ColorJitter(brightness=0.0, contrast=0.0, saturation=0.3, hue=0.05, p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.2),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.2),
    ]


PRESET = Preset(
    name="heavy",
    summary="flips, ±30° rotation, ±30% zoom, ±10% shift, shear, crop up to 25% or pad 5%, strong "
            "brightness/contrast, colour jitter, blur, noise",
    assumes="labels survive strong changes of colour, sharpness and geometry (not for colour-defined "
            "classes); for object tasks, objects with under 30% of their box left are dropped",
    build_transforms=build,
    min_visibility=0.3,
    min_area=4.0,
)
