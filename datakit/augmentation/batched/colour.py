"""Batched colour: brightness/contrast, gamma and ``ColorJitter``, with the arithmetic albumentations
and OpenCV use on uint8 images.

``RandomBrightnessContrast`` is albucore's truncating lookup table; ``RandomGamma`` each image's own
table, computed as albumentations computes it. ``ColorJitter`` reproduces OpenCV's 8-bit
conversions: grey as ``(4899 R + 9617 G + 1868 B + 2^13) >> 14``, RGB to HSV with OpenCV's
fixed-point division tables, HSV to RGB in float32 as ``HSV2RGB_b`` does it (truncating in its vector
loop, rounding the pixels left at the end of a row), and
``cv2.addWeighted``'s rounding; its four adjustments run in each image's own random order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from datakit.augmentation.batched.steps import (NoEquivalent, Step, as_truncated_uint8, as_uint8, chosen,
                                               constant, drawn)


@dataclass(frozen=True)
class BrightnessContrast:
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    by_max: bool
    p: float
    width: int = 2

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        alpha, beta = 1.0 + drawn(touched, self.contrast, rng, 0.0), drawn(touched, self.brightness, rng, 0.0)
        return np.stack([alpha, beta * 255.0 if self.by_max else beta], axis=1)

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        alpha, beta = params[:, 0].view(-1, 1, 1, 1), params[:, 1].view(-1, 1, 1, 1)
        if not self.by_max:  # a share of the image's own mean brightness
            beta = beta * images.mean(dim=(1, 2, 3), keepdim=True)
        return as_truncated_uint8(images * alpha + beta)  # albucore's LUT; alpha 1, beta 0 change nothing


GAMMA_LEVELS = np.arange(0, 256.0 / 255, 1.0 / 255)[:256]  # albumentations' own arange, rounding and all


@dataclass(frozen=True)
class Gamma:
    gamma: tuple[float, float]  # albumentations' gamma_limit: percent
    p: float
    width: int = 256  # each image's own lookup table, computed as albumentations computes it

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        gamma = rng.uniform(*self.gamma, n) / 100.0
        tables = ((GAMMA_LEVELS[None] ** gamma[:, None]) * 255).astype(np.uint8).astype(np.float64)
        tables[~touched] = np.arange(256)
        return tables

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flat = images.reshape(len(images), -1).long()
        return torch.gather(params, 1, flat).view_as(images)


# OpenCV's RGB2HSV_b tables (hsv_shift 12), computed as it computes them: double division, rounded half to even
HSV_SHIFT = 12
_levels = np.arange(1, 256, dtype=np.float64)
SATURATION_DIVISORS = np.concatenate([[0], np.rint((255 << HSV_SHIFT) / _levels)]).astype(np.int64)
HUE_DIVISORS = np.concatenate([[0], np.rint((180 << HSV_SHIFT) / (6.0 * _levels))]).astype(np.int64)
GREY_WEIGHTS = (4899, 9617, 1868)  # OpenCV's R, G, B weights for 8-bit grey, in 1/2^14


def grey(images: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(image, COLOR_RGB2GRAY)`` of uint8 values: N x 1 x H x W."""
    r, g, b = images.int().unbind(1)
    return ((r * GREY_WEIGHTS[0] + g * GREY_WEIGHTS[1] + b * GREY_WEIGHTS[2] + (1 << 13)) >> 14)[:, None].float()


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(image, COLOR_RGB2HSV)`` of uint8 values (H in [0, 180]), integer for integer."""
    r, g, b = images.int().unbind(1)  # int32 holds every product below (at most 255 * 1044480)
    value = torch.maximum(torch.maximum(r, g), b)
    spread = value - torch.minimum(torch.minimum(r, g), b)
    saturation_div = constant(SATURATION_DIVISORS, images.device, torch.int32)
    hue_div = constant(HUE_DIVISORS, images.device, torch.int32)
    half = 1 << (HSV_SHIFT - 1)
    saturation = (spread * saturation_div[value.long()] + half) >> HSV_SHIFT
    hue = torch.where(value == r, g - b, torch.where(value == g, b - r + 2 * spread, r - g + 4 * spread))
    hue = (hue * hue_div[spread.long()] + half) >> HSV_SHIFT
    hue = torch.where(hue < 0, hue + 180, hue)
    return torch.stack([hue, saturation, value], dim=1).float()


# which of (v, v(1 - s), v(1 - s h), v(1 - s(1 - h))) each of r, g, b takes, per sector of the hue circle
_SECTORS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(image, COLOR_HSV2RGB)`` of uint8 values (hue range 180), in float32 as OpenCV computes it."""
    hue, saturation, value = hsv.unbind(1)
    one = torch.ones((), dtype=torch.float32, device=hsv.device)
    h = hue * torch.tensor(6.0 / 180, dtype=torch.float32)
    s = saturation * torch.tensor(1.0 / 255.0, dtype=torch.float32)
    v = value * torch.tensor(1.0 / 255.0, dtype=torch.float32)
    sector = torch.floor(h)
    h = h - sector
    sector = sector.long() % 6
    table = torch.stack([v, v * (one - s), v * (one - s * h), v * (one - s * (one - h))], dim=1)
    pick = constant(_SECTORS, hsv.device, torch.long)[sector].permute(0, 3, 1, 2)  # N x 3 x H x W: r, g, b
    rgb = torch.gather(table, 1, pick) * 255.0
    # OpenCV converts row by row: its vector loop truncates (v_trunc) whole blocks of pixels, and the
    # pixels left over at the end of a row go through its scalar loop, which rounds
    block = opencv_hsv_block()
    width = hsv.shape[-1]
    truncated = torch.arange(width, device=hsv.device) < (width // block) * block if block else \
        torch.zeros(width, dtype=torch.bool, device=hsv.device)
    return torch.where(truncated, rgb.floor(), rgb.round()).clamp_(0, 255)


@functools.lru_cache(maxsize=None)
def opencv_hsv_block() -> int:
    """Pixels per block of this machine's OpenCV ``HSV2RGB_b`` vector loop (0: none), found by converting a row
    of 255 pixels whose value truncates to 99 and rounds to 100: the blocks cover all but the last 255 mod block."""
    import cv2

    row = np.tile(np.array([[[10, 128, 200]]], np.uint8), (1, 255, 1))
    truncated = int((cv2.cvtColor(row, cv2.COLOR_HSV2RGB)[0, :, 2] == 99).sum())
    return 256 - truncated if truncated else 0


# Each adjustment gets its factor and 1 - factor (computed in float64 on the CPU, as albumentations
# computes it, then stored as float32: 1 - a float32 factor would differ in the last bits).


def _brightness(images: torch.Tensor, factor: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    return as_truncated_uint8(images * factor)  # albucore's multiply LUT


def _contrast(images: torch.Tensor, factor: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    level = grey(images) if images.shape[1] == 3 else images
    mean = level.double().mean(dim=(1, 2, 3), keepdim=True)
    adjusted = as_truncated_uint8(images * factor + (mean * complement.double()).float())
    # albumentations' factor 0: the mean everywhere, rounded
    return torch.where(factor == 0, torch.floor(mean + 0.5).float().expand_as(images), adjusted)


def _saturation(images: torch.Tensor, factor: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        return images  # albumentations leaves a grey image as it is
    # cv2.addWeighted's vector loop: fma(image, alpha, grey * beta) in float32, then rounded; the fused
    # multiply-add, one rounding, is the float64 sum rounded once to float32
    weighted_grey = (grey(images) * complement).double()
    return as_uint8((images.double() * factor.double() + weighted_grey).float())


HUES = np.arange(181)  # OpenCV's 8-bit hue: 0-180


def hue_tables(factors: np.ndarray) -> np.ndarray:
    """albumentations' hue lookup tables, (h + 180 * factor) mod 180 truncated to uint8, one row per factor
    (in float64 on the CPU: a float32 factor moves h + 180 * factor across an integer, e.g. for -0.3)."""
    return np.floor(np.mod(HUES[None] + 180 * factors[:, None], 180))


def _hue(images: torch.Tensor, tables: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    if images.shape[1] != 3:
        return images
    hsv = rgb_to_hsv(images)
    shifted = torch.gather(tables, 1, hsv[:, 0].long().flatten(1)).view_as(hsv[:, :1])
    return hsv_to_rgb(torch.cat([shifted, hsv[:, 1:]], dim=1))


JITTERS = (_brightness, _contrast, _saturation, _hue)  # albumentations' order of ``ColorJitter.transforms``
UNCHANGED = (1.0, 1.0, 1.0, 0.0)  # the factor of each that albumentations returns the image for untouched


HUE = 3
MAX_SCHEDULE = 16  # 4 adjustments that can act: 4 x 4 positions


@dataclass(frozen=True)
class ColorJitter:
    """Each chosen image draws four factors and an order, as albumentations does, and goes through the
    adjustments in that order; a factor at its 'unchanged' value leaves the image as it is.

    The batch runs through one ``schedule`` of adjustments that holds every image's order as a
    subsequence, each image acting only at its own positions: with two that can act (``heavy``'s
    saturation and hue) saturation, hue, saturation, so the costly hue conversion runs once per batch."""

    ranges: tuple[tuple[float, float], ...]  # brightness, contrast, saturation, hue
    p: float
    width: int = 8 + MAX_SCHEDULE + len(HUES)  # factors, 1 - factors, where each acts in the schedule, hue table

    @property
    def schedule(self) -> list[int]:
        moving = [k for k, (low, high) in enumerate(self.ranges) if (low, high) != (UNCHANGED[k],) * 2]
        if len(moving) == 2:
            cheap, costly = sorted(moving, key=lambda k: k == HUE)
            return [cheap, costly, cheap]
        return moving * len(moving)  # block j holds the j-th of any order

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        factors = np.stack([rng.uniform(low, high, n) for low, high in self.ranges], axis=1)
        order = np.argsort(rng.random((n, 4)), axis=1)
        factors[~touched] = UNCHANGED
        schedule = self.schedule
        acts = np.zeros((n, MAX_SCHEDULE))
        for i in np.flatnonzero(touched):
            position = 0
            for k in order[i]:
                if k in schedule:  # the first place for k after the previous adjustment's
                    position = schedule.index(k, position)
                    acts[i, position] = factors[i, k] != UNCHANGED[k]
                    position += 1
        return np.concatenate([factors, 1 - factors, acts, hue_tables(factors[:, HUE])], axis=1)

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        factors, complements = params[:, :4].view(-1, 4, 1, 1, 1), params[:, 4:8].view(-1, 4, 1, 1, 1)
        acts = params[:, 8:8 + MAX_SCHEDULE] > 0.5
        for position, k in enumerate(self.schedule):
            argument = params[:, 8 + MAX_SCHEDULE:] if k == HUE else factors[:, k]
            adjusted = JITTERS[k](images, argument, complements[:, k])
            images = torch.where(acts[:, position].view(-1, 1, 1, 1), adjusted, images)
        return images


def brightness_contrast(transform: Any) -> Step:
    if transform.ensure_safe_range:
        raise NoEquivalent("RandomBrightnessContrast with ensure_safe_range")
    return BrightnessContrast(tuple(transform.brightness_limit), tuple(transform.contrast_limit),
                              bool(transform.brightness_by_max), float(transform.p))


def gamma(transform: Any) -> Step:
    return Gamma(tuple(transform.gamma_limit), float(transform.p))


def color_jitter(transform: Any) -> Step:
    ranges = tuple((float(low), float(high)) for low, high in
                   (transform.brightness, transform.contrast, transform.saturation, transform.hue))
    return ColorJitter(ranges, float(transform.p))
