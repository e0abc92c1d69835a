"""A batched torch equivalent of an albumentations pipeline, for images that live on the training device.

Albumentations works one numpy image at a time on the CPU; with the cached images on a GPU, moving
each batch back to the CPU to augment it would cost more than the step. ``batched_equivalent``
translates a pipeline into steps that act on a whole batch (N x C x H x W, float values on the
uint8 scale) with the same parameter distributions and the same arithmetic:

- ``HorizontalFlip``, ``VerticalFlip``;
- ``Affine`` (rotate, scale, translate_percent or translate_px, shear, keep_ratio, balanced_scale;
  bilinear or nearest; constant or replicated border): the 3x3 matrix albumentations builds
  (``create_affine_transformation_matrix``, centre (w/2 - 0.5, h/2 - 0.5)), applied by inverse
  mapping with ``affine_grid`` and ``grid_sample`` as ``cv2.warpAffine`` does;
- ``RandomBrightnessContrast``: ``x * alpha + beta``, clipped and truncated to uint8 as albucore's LUT does;
- ``RandomGamma``: each image's own lookup table, computed exactly as albumentations computes it;
- ``CropAndPad`` with crops only (one percent range <= 0) and ``keep_size``: the crop resized back
  with ``cv2.resize``'s bilinear mapping (OpenCV's fixed-point weights put about one pixel in ten
  one level away).

Every step ends with the image rounded and clipped to uint8 values, as albumentations' uint8 images
are between steps. tests/test_batched_augment.py checks each against albumentations with fixed
parameters. A pipeline holding anything else has no equivalent (``None`` and the reason): it
runs per image in the loader as before. Each image draws its own parameters, on the CPU from a
numpy generator; the streams differ from albumentations', the distributions do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

LINEAR, NEAREST = 1, 0  # cv2.INTER_LINEAR, cv2.INTER_NEAREST
CONSTANT, REPLICATE = 0, 1  # cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE


class Step(Protocol):
    """One transform, in two halves: ``sample`` draws every image's parameters on the CPU (numpy: a
    handful of microseconds, where as many small GPU kernels would cost milliseconds per batch),
    ``apply`` runs them on the batch's device. An image the step does not touch gets parameters
    that change nothing (after the rounding to uint8 values)."""

    width: int  # parameters per image

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor: ...


def _chosen(n: int, p: float, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which images a step with probability ``p`` applies to (drawn for every image, as albumentations does)."""
    return active & (rng.random(n) < p)


@dataclass(frozen=True)
class Flip:
    dim: int  # -1 horizontal, -2 vertical
    p: float
    width: int = 1

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _chosen(n, self.p, active, rng).astype(np.float64)[:, None]

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return torch.where(params.view(-1, 1, 1, 1) > 0.5, images.flip(self.dim), images)


@dataclass(frozen=True)
class BrightnessContrast:
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    by_max: bool
    p: float
    width: int = 2

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = _chosen(n, self.p, active, rng)
        alpha = np.where(chosen, 1.0 + rng.uniform(*self.contrast, n), 1.0)
        beta = np.where(chosen, rng.uniform(*self.brightness, n), 0.0)
        return np.stack([alpha, beta * 255.0 if self.by_max else beta], axis=1)

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        alpha, beta = params[:, 0].view(-1, 1, 1, 1), params[:, 1].view(-1, 1, 1, 1)
        if not self.by_max:  # a share of the image's own mean brightness
            beta = beta * images.mean(dim=(1, 2, 3), keepdim=True)
        # albucore's uint8 LUT: clip, then truncate (not round); alpha 1, beta 0 leaves integers as they are
        return (images * alpha + beta).clamp_(0, 255).floor_()


def affine_matrices(translate: np.ndarray, shear: np.ndarray, scale: np.ndarray, rotate: np.ndarray,
                    shift: tuple[float, float]) -> np.ndarray:
    """N x 3 x 3: albumentations' ``create_affine_transformation_matrix`` for a batch; ``translate``,
    ``shear`` (degrees) and ``scale`` are N x 2 (x, y), ``rotate`` N degrees."""
    n = len(rotate)

    def matrix(**cells: np.ndarray | float) -> np.ndarray:
        m = np.tile(np.eye(3), (n, 1, 1))
        for name, value in cells.items():
            m[:, int(name[1]), int(name[2])] = value
        return m

    radians = np.deg2rad(rotate % 360)
    cos, sin = np.cos(radians), np.sin(radians)
    to_origin = matrix(m02=-shift[0], m12=-shift[1])
    scaling = matrix(m00=scale[:, 0], m11=scale[:, 1])
    rotation = matrix(m00=cos, m01=sin, m10=-sin, m11=cos)
    shearing = matrix(m01=np.tan(np.deg2rad(shear[:, 0])), m10=np.tan(np.deg2rad(shear[:, 1])))
    translation = matrix(m02=translate[:, 0], m12=translate[:, 1])
    back = matrix(m02=shift[0], m12=shift[1])
    return back @ translation @ shearing @ rotation @ scaling @ to_origin


def sampling_grids(matrices: np.ndarray, height: int, width: int) -> np.ndarray:
    """N x 2 x 3 ``theta`` for ``F.affine_grid`` (align_corners=False) that does what ``cv2.warpAffine(image,
    M[:2])`` does: output pixel (x, y) reads the input at M^-1 (x, y), pixel centres at integers."""
    to_unit = np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])
    return (to_unit @ np.linalg.inv(matrices) @ np.linalg.inv(to_unit))[:, :2, :]


@dataclass(frozen=True)
class Affine:
    rotate: tuple[float, float]
    scale: dict[str, tuple[float, float]]
    translate_percent: dict[str, tuple[float, float]] | None
    translate_px: dict[str, tuple[float, float]] | None
    shear: dict[str, tuple[float, float]]
    keep_ratio: bool
    balanced_scale: bool
    mode: str
    border: str
    fill: float
    p: float
    width: int = 6

    def _scales(self, n: int, rng: np.random.Generator) -> np.ndarray:
        columns = []
        for axis in ("x", "y"):
            low, high = self.scale[axis]
            if self.balanced_scale and low < 1 < high:
                below, above = rng.uniform(low, 1.0, n), rng.uniform(1.0, high, n)
                columns.append(np.where(rng.random(n) < 0.5, below, above))
            elif self.balanced_scale and (low < 1 or high > 1):
                columns.append(rng.uniform(min(low, 1.0), max(high, 1.0), n))
            elif self.balanced_scale:
                columns.append(np.ones(n))
            else:
                columns.append(rng.uniform(low, high, n))
        if self.keep_ratio:
            columns[1] = columns[0]
        return np.stack(columns, axis=1)

    def _translation(self, n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        if self.translate_px is not None:
            return np.stack([rng.integers(int(self.translate_px[a][0]), int(self.translate_px[a][1]), n,
                                          endpoint=True).astype(np.float64) for a in ("x", "y")], axis=1)
        if self.translate_percent is not None:
            # albumentations: int(fraction * side), a truncation towards zero
            return np.stack([np.trunc(rng.uniform(*self.translate_percent[a], n) * side)
                             for a, side in (("x", width), ("y", height))], axis=1)
        return np.zeros((n, 2))

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = _chosen(n, self.p, active, rng)
        translate = self._translation(n, height, width, rng)
        shear = -np.stack([rng.uniform(*self.shear[a], n) for a in ("x", "y")], axis=1)
        scale = self._scales(n, rng)
        rotate = rng.uniform(*self.rotate, n)
        matrices = affine_matrices(translate, shear, scale, rotate, (width / 2 - 0.5, height / 2 - 0.5))
        matrices[~chosen] = np.eye(3)
        return sampling_grids(matrices, height, width).reshape(n, 6)

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(params.view(-1, 2, 3), list(images.shape), align_corners=False)
        if self.border == "zeros" and self.fill:
            warped = F.grid_sample(images - self.fill, grid, mode=self.mode, padding_mode="zeros",
                                   align_corners=False) + self.fill
        else:
            warped = F.grid_sample(images, grid, mode=self.mode, padding_mode=self.border, align_corners=False)
        return warped.round_().clamp_(0, 255)  # as cv2 writes uint8


GAMMA_LEVELS = np.arange(0, 256.0 / 255, 1.0 / 255)[:256]  # albumentations' own arange, rounding and all


@dataclass(frozen=True)
class Gamma:
    gamma: tuple[float, float]  # albumentations' gamma_limit: percent
    p: float
    width: int = 256  # each image's own lookup table, computed as albumentations computes it

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = _chosen(n, self.p, active, rng)
        gamma = rng.uniform(*self.gamma, n) / 100.0
        tables = ((GAMMA_LEVELS[None] ** gamma[:, None]) * 255).astype(np.uint8).astype(np.float64)
        tables[~chosen] = np.arange(256)
        return tables

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        flat = images.reshape(len(images), -1).long()
        return torch.gather(params, 1, flat).view_as(images)


def _prevent_zero(first: np.ndarray, second: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """albumentations' ``CropAndPad.__prevent_zero``: give back pixels when the crops leave none."""
    regain = side + 1
    regain1 = np.full_like(first, regain - regain // 2)  # the odd pixel goes to the first side
    regain2 = np.full_like(second, regain // 2)
    take_first = regain1 > first
    regain2 = np.where(take_first, regain2 + regain1 - first, regain2)
    regain1 = np.where(take_first, first, regain1)
    take_second = ~take_first & (regain2 > second)
    regain1 = np.where(take_second, regain1 + regain2 - second, regain1)
    regain2 = np.where(take_second, second, regain2)
    return first - regain1, second - regain2


@dataclass(frozen=True)
class Crop:
    """``CropAndPad`` with crops only (percent ranges <= 0), ``keep_size``: the crop resized back with
    ``cv2.resize``'s bilinear mapping, source coordinates clamped to the crop as OpenCV clamps them."""

    percent: tuple[float, float]
    independently: bool
    p: float
    width: int = 6

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = _chosen(n, self.p, active, rng)
        drawn = rng.uniform(*self.percent, (n, 4 if self.independently else 1))
        top, right, bottom, left = (np.trunc(drawn[:, i % drawn.shape[1]] * side).astype(np.int64)
                                    for i, side in enumerate((height, width, height, width)))
        top, right, bottom, left = (np.maximum(-v, 0) for v in (top, right, bottom, left))
        short = height - (top + bottom) < 1
        top[short], bottom[short] = _prevent_zero(top[short], bottom[short], height)
        short = width - (left + right) < 1
        left[short], right[short] = _prevent_zero(left[short], right[short], width)
        top, right, bottom, left = (np.maximum(v, 0) * chosen for v in (top, right, bottom, left))
        kept_w, kept_h = width - left - right, height - top - bottom
        return np.stack([left, top, kept_w / width, kept_h / height, kept_w, kept_h], axis=1).astype(np.float64)

    def apply(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        left, top, scale_x, scale_y, kept_w, kept_h = (params[:, i:i + 1] for i in range(6))
        columns = torch.arange(width, device=images.device, dtype=torch.float32)[None]
        rows = torch.arange(height, device=images.device, dtype=torch.float32)[None]
        xs = left + torch.minimum(((columns + 0.5) * scale_x - 0.5).clamp(min=0), kept_w - 1)
        ys = top + torch.minimum(((rows + 0.5) * scale_y - 0.5).clamp(min=0), kept_h - 1)
        grid = torch.stack([((2 * xs + 1) / width - 1)[:, None, :].expand(n, height, width),
                            ((2 * ys + 1) / height - 1)[:, :, None].expand(n, height, width)], dim=-1)
        warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return warped.round_().clamp_(0, 255)


def _flip(transform: Any, dim: int) -> Step:
    return Flip(dim, float(transform.p))


def _affine(transform: Any) -> Step:
    problems = []
    if transform.fit_output:
        problems.append("fit_output")
    if transform.interpolation not in (LINEAR, NEAREST):
        problems.append(f"interpolation {transform.interpolation}")
    if transform.border_mode not in (CONSTANT, REPLICATE):
        problems.append(f"border_mode {transform.border_mode}")
    if not isinstance(transform.fill, (int, float)):
        problems.append("a fill per channel")
    if problems:
        raise _NoEquivalent(f"Affine with {', '.join(problems)}")
    return Affine(
        rotate=tuple(transform.rotate), scale=dict(transform.scale),
        translate_percent=dict(transform.translate_percent) if transform.translate_percent is not None else None,
        translate_px=dict(transform.translate_px) if transform.translate_px is not None else None,
        shear=dict(transform.shear), keep_ratio=bool(transform.keep_ratio),
        balanced_scale=bool(transform.balanced_scale),
        mode="bilinear" if transform.interpolation == LINEAR else "nearest",
        border="zeros" if transform.border_mode == CONSTANT else "border", fill=float(transform.fill),
        p=float(transform.p))


def _brightness_contrast(transform: Any) -> Step:
    if transform.ensure_safe_range:
        raise _NoEquivalent("RandomBrightnessContrast with ensure_safe_range")
    return BrightnessContrast(tuple(transform.brightness_limit), tuple(transform.contrast_limit),
                              bool(transform.brightness_by_max), float(transform.p))


def _gamma(transform: Any) -> Step:
    return Gamma(tuple(transform.gamma_limit), float(transform.p))


def _crop_and_pad(transform: Any) -> Step:
    percent = transform.percent
    problems = []
    if transform.px is not None or not (isinstance(percent, (tuple, list)) and len(percent) == 2
                                        and all(isinstance(v, (int, float)) for v in percent)):
        problems.append("other than one percent range")
    elif max(percent) > 0:
        problems.append("padding (a percent range above 0)")
    if not transform.keep_size:
        problems.append("keep_size=False")
    if transform.interpolation != LINEAR:
        problems.append(f"interpolation {transform.interpolation}")
    if problems:
        raise _NoEquivalent(f"CropAndPad with {', '.join(problems)}")
    return Crop((float(percent[0]), float(percent[1])), bool(transform.sample_independently), float(transform.p))


TRANSLATIONS: dict[str, Callable[[Any], Step]] = {
    "HorizontalFlip": lambda t: _flip(t, -1),
    "VerticalFlip": lambda t: _flip(t, -2),
    "Affine": _affine,
    "RandomBrightnessContrast": _brightness_contrast,
    "RandomGamma": _gamma,
    "CropAndPad": _crop_and_pad,
}


class _NoEquivalent(Exception):
    pass


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
        start = 0
        for step in self.steps:
            images = step.apply(images, params[:, start:start + step.width])
            start += step.width
        return images


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
        except _NoEquivalent as exc:
            return None, f"{exc} has no batched equivalent"
    p = float(getattr(pipeline, "p", 1.0))
    if math.isclose(p, 0.0):
        return BatchedAugment([], 1.0), ""
    return BatchedAugment(steps, p), ""
