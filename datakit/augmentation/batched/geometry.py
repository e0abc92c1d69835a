"""Batched geometry: flips, ``Affine`` and ``CropAndPad``, with albumentations' own arithmetic.

``Affine`` builds the 3x3 matrix albumentations builds (``create_affine_transformation_matrix``,
centre (w/2 - 0.5, h/2 - 0.5)) and applies it by inverse mapping with ``affine_grid``'s grid and
``grid_sample``, as ``cv2.warpAffine`` does. ``CropAndPad`` (``keep_size``) crops, pads with a
constant and resizes back with ``cv2.resize``'s bilinear mapping; OpenCV's fixed-point weights put
about one pixel in ten one level away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datakit.augmentation.batched.steps import (CONSTANT, LINEAR, NEAREST, REPLICATE, NoEquivalent, Step, as_uint8,
                                               chosen)


@dataclass(frozen=True)
class Flip:
    dim: int  # -1 horizontal, -2 vertical
    p: float
    width: int = 1

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return chosen(n, self.p, active, rng).astype(np.float64)[:, None]

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.where(params.view(-1, 1, 1, 1) > 0.5, images.flip(self.dim), images)


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


def warp_thetas(matrices: np.ndarray, height: int, width: int) -> np.ndarray:
    """N x 2 x 3 ``theta`` for ``sampling_grid`` (``F.affine_grid``'s, align_corners=False) that does what
    ``cv2.warpAffine(image, M[:2])`` does: output pixel (x, y) reads the input at M^-1 (x, y), pixel centres at
    integers."""
    to_unit = np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])
    return (to_unit @ np.linalg.inv(matrices) @ np.linalg.inv(to_unit))[:, :2, :]


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta.view(-1, 2, 3), ..., align_corners=False)`` computed elementwise: affine_grid is a
    matrix product, which a TF32 setting (``torch.set_float32_matmul_precision``) would make coarse on a GPU."""
    xs = (2 * torch.arange(width, device=theta.device, dtype=theta.dtype) + 1) / width - 1
    ys = (2 * torch.arange(height, device=theta.device, dtype=theta.dtype) + 1) / height - 1
    t = theta.view(-1, 6, 1, 1)
    x, y = xs.view(1, 1, -1), ys.view(1, -1, 1)
    return torch.stack([t[:, 0] * x + t[:, 1] * y + t[:, 2], t[:, 3] * x + t[:, 4] * y + t[:, 5]], dim=-1)


def resample(images: torch.Tensor, grid: torch.Tensor, mode: str, border: str, fill: float) -> torch.Tensor:
    """``images`` read at ``grid`` (``grid_sample``, align_corners=False), written as cv2 writes uint8; with a
    constant border (``zeros``) what lies outside is ``fill``."""
    if border == "zeros" and fill:
        warped = F.grid_sample(images - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill
    else:
        warped = F.grid_sample(images, grid, mode=mode, padding_mode=border, align_corners=False)
    return as_uint8(warped)


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
        touched = chosen(n, self.p, active, rng)
        translate = self._translation(n, height, width, rng)
        shear = -np.stack([rng.uniform(*self.shear[a], n) for a in ("x", "y")], axis=1)
        scale = self._scales(n, rng)
        rotate = rng.uniform(*self.rotate, n)
        matrices = affine_matrices(translate, shear, scale, rotate, (width / 2 - 0.5, height / 2 - 0.5))
        matrices[~touched] = np.eye(3)
        return warp_thetas(matrices, height, width).reshape(n, 6)

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return resample(images, sampling_grid(params, *images.shape[-2:]), self.mode, self.border, self.fill)


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
class CropPad:
    """``CropAndPad`` with one percent range and ``keep_size``: each side is cropped (a negative draw)
    or padded with ``fill`` (a positive one), then the result is resized back with ``cv2.resize``'s
    bilinear mapping, its source coordinates clamped to the padded image as OpenCV clamps them."""

    percent: tuple[float, float]
    independently: bool
    fill: float
    p: float
    width: int = 6

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        drawn = rng.uniform(*self.percent, (n, 4 if self.independently else 1))
        # albumentations: int(fraction * side), a truncation towards zero; top, right, bottom, left
        sides = [np.trunc(drawn[:, i % drawn.shape[1]] * side).astype(np.int64)
                 for i, side in enumerate((height, width, height, width))]
        pad_top, pad_right, pad_bottom, pad_left = (np.maximum(v, 0) for v in sides)
        top, right, bottom, left = (np.maximum(-v, 0) for v in sides)
        short = height - (top + bottom) < 1
        top[short], bottom[short] = _prevent_zero(top[short], bottom[short], height)
        short = width - (left + right) < 1
        left[short], right[short] = _prevent_zero(left[short], right[short], width)
        top, right, bottom, left = (np.maximum(v, 0) for v in (top, right, bottom, left))
        padded_w = width - left - right + pad_left + pad_right
        padded_h = height - top - bottom + pad_top + pad_bottom
        # the source pixel of output x, in the original image: (left - pad_left) + clamp((x + 0.5) * scale - 0.5)
        params = np.stack([left - pad_left, top - pad_top, padded_w / width, padded_h / height, padded_w - 1,
                           padded_h - 1], axis=1).astype(np.float64)
        params[~touched] = [0, 0, 1, 1, width - 1, height - 1]
        return params

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        origin_x, origin_y, scale_x, scale_y, last_x, last_y = (params[:, i:i + 1] for i in range(6))
        columns = torch.arange(width, device=images.device, dtype=torch.float32)[None]
        rows = torch.arange(height, device=images.device, dtype=torch.float32)[None]
        xs = origin_x + torch.minimum(((columns + 0.5) * scale_x - 0.5).clamp(min=0), last_x)
        ys = origin_y + torch.minimum(((rows + 0.5) * scale_y - 0.5).clamp(min=0), last_y)
        grid = torch.stack([((2 * xs + 1) / width - 1)[:, None, :].expand(n, height, width),
                            ((2 * ys + 1) / height - 1)[:, :, None].expand(n, height, width)], dim=-1)
        # outside the image is padding: a cropped side's coordinates never leave the crop, and a padded
        # side was not cropped, so what lies past it is the fill
        return resample(images, grid, "bilinear", "zeros", self.fill)


def flip(transform: Any, dim: int) -> Step:
    return Flip(dim, float(transform.p))


def affine(transform: Any) -> Step:
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
        raise NoEquivalent(f"Affine with {', '.join(problems)}")
    return Affine(
        rotate=tuple(transform.rotate), scale=dict(transform.scale),
        translate_percent=dict(transform.translate_percent) if transform.translate_percent is not None else None,
        translate_px=dict(transform.translate_px) if transform.translate_px is not None else None,
        shear=dict(transform.shear), keep_ratio=bool(transform.keep_ratio),
        balanced_scale=bool(transform.balanced_scale),
        mode="bilinear" if transform.interpolation == LINEAR else "nearest",
        border="zeros" if transform.border_mode == CONSTANT else "border", fill=float(transform.fill),
        p=float(transform.p))


def crop_and_pad(transform: Any) -> Step:
    percent = transform.percent
    problems = []
    one_range = transform.px is None and isinstance(percent, (tuple, list)) and len(percent) == 2 and all(
        isinstance(v, (int, float)) for v in percent)
    if not one_range:
        problems.append("other than one percent range")
    elif max(percent) > 0 and transform.border_mode != CONSTANT:
        problems.append(f"padding with border_mode {transform.border_mode}")
    if not transform.keep_size:
        problems.append("keep_size=False")
    if transform.interpolation != LINEAR:
        problems.append(f"interpolation {transform.interpolation}")
    if not isinstance(transform.fill, (int, float)):
        problems.append("a fill per channel")
    if problems:
        raise NoEquivalent(f"CropAndPad with {', '.join(problems)}")
    return CropPad((float(percent[0]), float(percent[1])), bool(transform.sample_independently),
                   float(transform.fill), float(transform.p))
