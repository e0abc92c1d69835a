"""Resizing for a model, as albumentations transforms applied through ``targets.apply``.

Three policies (``data.resize``): ``stretch`` to the size, ``letterbox`` (fit inside, keep the
aspect ratio, pad with black, centred) and ``crop`` (cover, keep the aspect ratio, centre crop).
Because they are albumentations transforms run through :func:`datakit.augmentation.targets.apply`,
boxes and instance masks move with the pixels and a semantic (label) mask is resized with
nearest neighbour, never blended; objects a crop cuts away are reported by ``targets``.

The image is resized with area interpolation when it shrinks and bilinear when it grows, exactly as
``cv2.resize`` was called before this module existed, so classification runs see the same pixels.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from datakit.augmentation import targets
from datakit.errors import DatakitError

POLICIES = ("stretch", "letterbox", "crop")


def _check(height: int, width: int, policy: str) -> None:
    if policy not in POLICIES:
        raise DatakitError(f"unknown resize policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    if height < 1 or width < 1:
        raise DatakitError(f"resize needs a positive size, got {height}x{width}")


def scaled_size(h: int, w: int, height: int, width: int, policy: str) -> tuple[int, int]:
    """The size the image is scaled to before padding (letterbox) or cropping (crop)."""
    if policy == "stretch":
        return height, width
    scale = min(height / h, width / w) if policy == "letterbox" else max(height / h, width / w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def transforms(height: int, width: int, policy: str, shrinking: bool) -> list[Any]:
    """The albumentations transforms of a policy (interpolation chosen by whether the image shrinks)."""
    import albumentations as A
    import cv2

    _check(height, width, policy)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    nearest = cv2.INTER_NEAREST  # label masks hold class ids: never blend two of them
    if policy == "stretch":
        return [A.Resize(height, width, interpolation=interpolation, mask_interpolation=nearest)]
    if policy == "letterbox":
        return [A.LongestMaxSize(max_size_hw=(height, width), interpolation=interpolation, mask_interpolation=nearest),
                A.PadIfNeeded(min_height=height, min_width=width, position="center", border_mode=cv2.BORDER_CONSTANT,
                              fill=0, fill_mask=0)]
    return [A.SmallestMaxSize(max_size_hw=(height, width), interpolation=interpolation, mask_interpolation=nearest),
            A.CenterCrop(height, width)]


@lru_cache(maxsize=64)
def _pipeline(height: int, width: int, policy: str, shrinking: bool) -> Any:
    # built once per size and policy: composing costs far more than applying
    return targets.compose(transforms(height, width, policy, shrinking))


def resize_sample(sample: targets.Sample, height: int, width: int, policy: str) -> targets.Result:
    """The image of ``sample`` resized by ``policy``, with its boxes, labels and masks moved along."""
    _check(height, width, policy)
    h, w = sample.image.shape[:2]
    out_h, out_w = scaled_size(h, w, height, width, policy)
    shrinking = out_h * out_w < h * w
    result = targets.apply(_pipeline(height, width, policy, shrinking), sample)
    image = result.sample.image
    if image.ndim == 2:  # a grayscale image keeps its channel axis
        result.sample.image = image[:, :, None]
    return result


@lru_cache(maxsize=64)
def _image_transforms(height: int, width: int, policy: str, shrinking: bool) -> tuple[Any, ...]:
    return tuple(transforms(height, width, policy, shrinking))


def resize_image(image: np.ndarray, height: int, width: int, policy: str) -> np.ndarray:
    """uint8 HxWxC image resized by ``policy``: the same transforms, without targets to move.

    Every image a model sees is resized here (training, eval, predict): the transforms (all
    deterministic) are called one after the other, without ``Compose`` and its target processing,
    which an image without targets does not need and which would triple the cost of a resize.
    """
    _check(height, width, policy)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    out_h, out_w = scaled_size(h, w, height, width, policy)
    out = image
    for transform in _image_transforms(height, width, policy, out_h * out_w < h * w):
        out = transform(image=out)["image"]
    return out[:, :, None] if out.ndim == 2 else np.ascontiguousarray(out)


def boxes_to_original(boxes: np.ndarray, h: int, w: int, height: int, width: int, policy: str) -> np.ndarray:
    """``x0, y0, x1, y1`` boxes on the resized (``height`` x ``width``) image mapped back onto the
    original ``h`` x ``w`` image: the inverse of :func:`resize_sample`'s geometry for each policy,
    clipped to the original image (predictions are reported where the user's pixels are)."""
    _check(height, width, policy)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out_h, out_w = scaled_size(h, w, height, width, policy)
    if policy == "letterbox":  # PadIfNeeded centres: the left/top pad is the floor of half the margin
        boxes[:, [0, 2]] -= (width - out_w) // 2
        boxes[:, [1, 3]] -= (height - out_h) // 2
    elif policy == "crop":  # CenterCrop keeps the middle: its first row/column
        boxes[:, [0, 2]] += (out_w - width) // 2
        boxes[:, [1, 3]] += (out_h - height) // 2
    boxes[:, [0, 2]] *= w / out_w
    boxes[:, [1, 3]] *= h / out_h
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return boxes
