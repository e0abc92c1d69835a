"""Online augmentation for training: the config's ``augment:`` turned into a pipeline.

``augment:`` takes what ``datakit augment`` takes (see datakit/augmentation/specs.py):

    augment: medium                          # a preset (or medium:fixed, heavy:any, ...)
    augment: my_aug.yaml                     # a spec file: A.save output or a list of transforms
    augment:                                 # the short form
      - HorizontalFlip                       # default parameters
      - {Affine: {rotate: [-10, 10], p: 0.5}}
      - {name: RandomBrightnessContrast, p: 0.3}

This module is the single place training asks for a transform (``build_transform``); it delegates to
``datakit.augmentation`` so training and the offline writer build the same pipeline object.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def build_transform(spec: Any, seed: int = 0, task: str = "classification") -> Callable[..., dict[str, Any]] | None:
    """An ``albumentations.Compose`` for ``spec`` (None when empty); bad names or parameters raise."""
    if not spec:
        return None
    from datakit.augmentation.specs import resolve

    return resolve(spec, task=task, seed=seed).image_only()


def apply(transform: Callable[..., dict[str, Any]], image: np.ndarray) -> np.ndarray:
    out = transform(image=image)["image"]
    # grayscale images keep their channel axis for the tensor conversion that follows
    if out.ndim == 2:
        out = out[:, :, None]
    return out
