"""A batched torch equivalent of an albumentations pipeline, for images that live on the training device.

Albumentations works one numpy image at a time on the CPU; with the cached images on a GPU, moving
each batch back to the CPU to augment it would cost more than the step. ``batched_equivalent``
translates a pipeline into steps that act on a whole batch (N x C x H x W, float values on the
uint8 scale) with the same parameter distributions and the same arithmetic:

- geometry (``geometry.py``): ``HorizontalFlip``, ``VerticalFlip``, ``Affine`` (rotate, scale,
  translate, shear, keep_ratio, balanced_scale; bilinear or nearest; constant or replicated border),
  ``CropAndPad`` (one percent range, ``keep_size``, constant padding);
- colour (``colour.py``): ``RandomBrightnessContrast``, ``RandomGamma``, ``ColorJitter``;
- filters and noise (``filters.py``): ``GaussianBlur``, ``MotionBlur``, ``GaussNoise``;
- ``OneOf`` of any of these.

Every step ends with the image rounded (or truncated, where albumentations truncates) and clipped
to uint8 values, as albumentations' uint8 images are between steps. tests/test_batched_augment.py
checks each against albumentations with fixed parameters, and whole presets by distribution. A
pipeline holding anything else has no equivalent (``None`` and the reason): it runs per image in
the loader as before. Each image draws its own parameters, on the CPU from a numpy generator; what
is drawn per pixel (noise) comes from a torch generator on the device seeded from the same numpy
stream. The streams differ from albumentations', the distributions do not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from datakit.augmentation.batched import colour, filters, geometry
from datakit.augmentation.batched.geometry import affine_matrices
from datakit.augmentation.batched.steps import NoEquivalent, Step, chosen

__all__ = ["TRANSLATIONS", "BatchedAugment", "OneOf", "affine_matrices", "batched_equivalent", "transform_names"]


@dataclass(frozen=True)
class OneOf:
    """albumentations' ``OneOf``: with probability ``p``, one child chosen by the children's normalized
    ``p``, applied for sure. Every child runs over the batch, touching only the images that chose it."""

    children: tuple[Step, ...]
    weights: tuple[float, ...]
    p: float

    @property
    def width(self) -> int:
        return sum(child.width for child in self.children)

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        which = rng.choice(len(self.children), size=n, p=self.weights)
        return np.concatenate([child.sample(n, height, width, touched & (which == i), rng)
                               for i, child in enumerate(self.children)], axis=1)

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        start = 0
        for child in self.children:
            images = child.apply(images, params[:, start:start + child.width], generator)
            start += child.width
        return images


def _one_of(transform: Any) -> Step:
    children = []
    for child in transform.transforms:
        name = type(child).__name__
        if name not in TRANSLATIONS:
            raise NoEquivalent(f"OneOf holding {name}")
        # the chosen child is applied for sure (albumentations' force_apply)
        children.append(dataclasses.replace(TRANSLATIONS[name](child), p=1.0))
    return OneOf(tuple(children), tuple(float(w) for w in transform.transforms_ps), float(transform.p))


TRANSLATIONS: dict[str, Callable[[Any], Step]] = {
    "HorizontalFlip": lambda t: geometry.flip(t, -1),
    "VerticalFlip": lambda t: geometry.flip(t, -2),
    "Affine": geometry.affine,
    "CropAndPad": geometry.crop_and_pad,
    "RandomBrightnessContrast": colour.brightness_contrast,
    "RandomGamma": colour.gamma,
    "ColorJitter": colour.color_jitter,
    "GaussianBlur": filters.gaussian_blur,
    "MotionBlur": filters.motion_blur,
    "GaussNoise": filters.gauss_noise,
    "OneOf": _one_of,
}


class BatchedAugment:
    """The translated pipeline: ``augment(images, rng)`` on N x C x H x W floats in [0, 255], on any device;
    every image's parameters come from the numpy generator ``rng`` and reach the device in one copy."""

    def __init__(self, steps: list[Step], p: float = 1.0) -> None:
        self.steps = steps
        self.p = p

    def __call__(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        active = rng.random(n) < self.p if self.p < 1 else np.ones(n, dtype=bool)
        drawn = [step.sample(n, height, width, active, rng) for step in self.steps]
        if not drawn:
            return images
        params = torch.from_numpy(np.concatenate(drawn, axis=1).astype(np.float32))
        params = params.to(images.device, non_blocking=True)
        generator = torch.Generator(device=images.device)
        generator.manual_seed(int(rng.integers(2**62)))
        start = 0
        for step in self.steps:
            images = step.apply(images, params[:, start:start + step.width], generator)
            start += step.width
        return images


def transform_names(pipeline: Any) -> list[str]:
    """The class names of a pipeline's transforms, those inside ``OneOf`` (any composition) included."""
    from albumentations.core.composition import BaseCompose

    names = []
    for transform in getattr(pipeline, "transforms", []):
        names.append(type(transform).__name__)
        if isinstance(transform, BaseCompose):  # ColorJitter's own ``transforms`` are functions, not transforms
            names += transform_names(transform)
    return names


def batched_equivalent(pipeline: Any) -> tuple[BatchedAugment | None, str]:
    """(the batched pipeline, "") or (None, why not) for an ``albumentations.Compose`` of image transforms."""
    transforms = getattr(pipeline, "transforms", None)
    if type(pipeline).__name__ != "Compose" or transforms is None:
        return None, f"{type(pipeline).__name__} is not a plain Compose"
    steps: list[Step] = []
    for transform in transforms:
        name = type(transform).__name__
        if name not in TRANSLATIONS:
            return None, f"{name} has no batched equivalent (those with one: {', '.join(TRANSLATIONS)})"
        try:
            steps.append(TRANSLATIONS[name](transform))
        except NoEquivalent as exc:
            return None, f"{exc} has no batched equivalent"
    p = float(getattr(pipeline, "p", 1.0))
    if math.isclose(p, 0.0):
        return BatchedAugment([], 1.0), ""
    return BatchedAugment(steps, p), ""
