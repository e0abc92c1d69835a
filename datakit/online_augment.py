"""Online augmentation for training: an albumentations pipeline built from the config's spec.

The spec is a list; each entry names an albumentations transform and its parameters, in any of
these forms::

    augment:
      - HorizontalFlip                       # default parameters
      - {Affine: {rotate: [-10, 10], p: 0.5}}
      - {name: RandomBrightnessContrast, p: 0.3}

This module is the single place training asks for a transform (``build_transform``), so a richer
augmentation module (presets, spec files) can replace it without touching the trainer.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import numpy as np

from datakit.errors import DatakitError


def _transform_classes() -> dict[str, type]:
    import albumentations as A

    return {
        name: obj for name, obj in vars(A).items()
        if isinstance(obj, type) and issubclass(obj, A.BasicTransform) and not name.startswith("_")
    }


def _as_tuples(value: Any) -> Any:
    # YAML has no tuples; albumentations takes ranges as tuples
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def _parse_entry(entry: Any, index: int) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and "name" in entry:
        params = {k: v for k, v in entry.items() if k != "name"}
        return str(entry["name"]), params
    if isinstance(entry, dict) and len(entry) == 1:
        (name, params), = entry.items()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise DatakitError(f"augment[{index}]: parameters of {name} must be a mapping, got {params!r}")
        return str(name), params
    raise DatakitError(f"augment[{index}]: expected a transform name, {{Name: {{param: value}}}} or "
                       f"{{name: Name, param: value}}, got {entry!r}")


def build_transform(spec: list[Any], seed: int = 0) -> Callable[..., dict[str, Any]] | None:
    """An ``albumentations.Compose`` for ``spec`` (None when empty); bad names or parameters raise."""
    if not spec:
        return None
    import albumentations as A

    known = _transform_classes()
    transforms = []
    for index, entry in enumerate(spec):
        name, params = _parse_entry(entry, index)
        cls = known.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else " (see albumentations' transform list)"
            raise DatakitError(f"augment[{index}]: unknown transform '{name}'{hint}")
        try:
            transforms.append(cls(**_as_tuples(params)))
        except Exception as exc:  # pydantic ValidationError, TypeError: both mean bad parameters
            first = str(exc).strip().splitlines()
            raise DatakitError(f"augment[{index}]: {name}: bad parameters {params!r} ({' '.join(first[:3])})") from None
    return A.Compose(transforms, seed=seed)


def apply(transform: Callable[..., dict[str, Any]], image: np.ndarray) -> np.ndarray:
    out = transform(image=image)["image"]
    # grayscale images keep their channel axis for the tensor conversion that follows
    if out.ndim == 2:
        out = out[:, :, None]
    return out
