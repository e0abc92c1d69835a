"""Batched filters and noise: ``GaussianBlur``, ``MotionBlur`` and ``GaussNoise``.

The blurs build each image's kernel on the CPU exactly as albumentations builds it (Gaussian:
PIL's kernel from sigma and an odd size; motion: a line through the kernel at a random angle,
direction bias and shift) and convolve the whole batch at once on the device, one kernel per
image (a grouped convolution), with OpenCV's default border (reflect 101) and its rounding.
``GaussNoise`` adds per-pixel normal noise drawn on the device (from the step's generator, seeded
from the same numpy stream), truncated towards zero and clipped, as albucore adds a float array to uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datakit.augmentation.batched.steps import NoEquivalent, Step, as_uint8, chosen, drawn

REFLECT_101 = 4  # cv2.BORDER_REFLECT_101, OpenCV's default border for filters


def _odd(size: int) -> int:
    return size + 1 if size % 2 == 0 else size


def gaussian_kernel(sigma: float, size: int) -> np.ndarray:
    """albumentations' ``create_gaussian_kernel_1d``: PIL's kernel, its size from sigma when ``size`` is 0."""
    size = _odd(int(sigma * 3.5) * 2 + 1 if size == 0 else size)
    x = np.arange(-(size // 2), size // 2 + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def odd_size(rng: np.random.Generator, low: int, high: int) -> int:
    """albumentations' ``sample_odd_from_range``: an odd size in [low, high], evens moved up, at least 3."""
    low = max(3, low + (low % 2 == 0))
    high = max(low, max(3, high + (high % 2 == 0)))
    return low + 2 * int(rng.integers(0, (high - low) // 2 + 1))


def motion_kernel(size: int, angle: float, direction: float, shift: tuple[float, float] | None) -> np.ndarray:
    """albumentations' ``create_motion_kernel``: a line of ones through the kernel, normalized."""
    kernel = np.zeros((size, size), dtype=np.float32)
    centre, half = size // 2, size // 2
    direction = float(np.clip(direction, -1.0, 1.0))
    start = -half * (1 - direction) if direction > 0 else float(-half)
    end = half * (1 + direction) if direction < 0 else float(half)
    t = np.linspace(start, end, size)
    x = centre + np.cos(np.deg2rad(angle)) * t
    y = centre + np.sin(np.deg2rad(angle)) * t
    if shift is not None:
        x, y = x + shift[0] * half / 2, y + shift[1] * half / 2
    x = np.clip(np.round(x), 0, size - 1).astype(int)
    y = np.clip(np.round(y), 0, size - 1).astype(int)
    kernel[y, x] = 1
    if not kernel.any():
        kernel[centre, centre] = 1
    return kernel / kernel.sum()


def _placed(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` in the middle of a ``size`` x ``size`` zero kernel, flattened."""
    out = np.zeros((size, size))
    offset = (size - kernel.shape[0]) // 2
    out[offset:offset + kernel.shape[0], offset:offset + kernel.shape[1]] = kernel
    return out.ravel()


def _identity(size: int) -> np.ndarray:
    return _placed(np.ones((1, 1)), size)


def convolve(images: torch.Tensor, kernels: torch.Tensor, size: int) -> torch.Tensor:
    """Each image with its own ``size`` x ``size`` kernel (N x size^2), reflect-101 borders, uint8 rounding."""
    n, channels, height, width = images.shape
    pad = size // 2
    if pad and (pad >= height or pad >= width):  # reflection needs more pixels than the padding
        padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    else:
        padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    # cuDNN computes float32 convolutions in TF32 by default (10-bit mantissa): a GPU convolves in float64
    exact = torch.float64 if images.is_cuda else images.dtype
    weights = kernels.to(exact).view(n, 1, size, size).repeat_interleave(channels, dim=0)
    out = F.conv2d(padded.to(exact).reshape(1, n * channels, height + 2 * pad, width + 2 * pad), weights,
                   groups=n * channels)
    return as_uint8(out.view(n, channels, height, width)).to(images.dtype)


@dataclass(frozen=True)
class GaussianBlur:
    sizes: tuple[int, int]  # albumentations' blur_limit (0: from sigma)
    sigmas: tuple[float, float]
    p: float

    @property
    def size(self) -> int:
        """The largest kernel this step draws (the kernels of smaller ones are padded with zeros)."""
        return _odd(self.sizes[1]) if self.sizes[1] else _odd(int(self.sigmas[1] * 3.5) * 2 + 1)

    @property
    def width(self) -> int:
        return self.size ** 2

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        sigmas = rng.uniform(*self.sigmas, n)
        sizes = rng.integers(self.sizes[0], self.sizes[1], n, endpoint=True)
        kernels = np.tile(_identity(self.size), (n, 1))
        for i in np.flatnonzero(touched):
            line = gaussian_kernel(sigmas[i], int(sizes[i]))
            kernels[i] = _placed(np.outer(line, line), self.size)
        return kernels

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return convolve(images, params, self.size)


@dataclass(frozen=True)
class MotionBlur:
    sizes: tuple[int, int]
    angles: tuple[float, float]
    directions: tuple[float, float]
    shifted: bool
    p: float

    @property
    def size(self) -> int:
        return max(3, self.sizes[1] + (self.sizes[1] % 2 == 0), self.sizes[0] + (self.sizes[0] % 2 == 0))

    @property
    def width(self) -> int:
        return self.size ** 2

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        kernels = np.tile(_identity(self.size), (n, 1))
        for i in np.flatnonzero(touched):
            size = odd_size(rng, *self.sizes)
            angle, direction = rng.uniform(*self.angles), rng.uniform(*self.directions)
            shift = (rng.uniform(-1, 1), rng.uniform(-1, 1)) if self.shifted else None
            kernels[i] = _placed(motion_kernel(size, angle, direction, shift), self.size)
        return kernels

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return convolve(images, params, self.size)


@dataclass(frozen=True)
class GaussNoise:
    per_channel: bool  # else one noise value per pixel, shared by its channels
    stds: tuple[float, float]  # fractions of 255
    means: tuple[float, float]
    p: float
    width: int = 2

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        touched = chosen(n, self.p, active, rng)
        return np.stack([drawn(touched, self.stds, rng, 0.0), drawn(touched, self.means, rng, 0.0)], axis=1) * 255.0

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, height, width = images.shape
        shape = (n, channels if self.per_channel else 1, height, width)
        noise = torch.randn(shape, generator=generator, device=images.device, dtype=images.dtype)
        noise = noise * params[:, :1, None, None] + params[:, 1:2, None, None]
        # albucore adds an array to uint8 as whole levels: the noise truncated towards zero, then clipped
        return (images + noise.trunc_()).clamp_(0, 255)


def _blur_border(transform: Any, name: str) -> None:
    border = getattr(transform, "border_mode", REFLECT_101)
    if border != REFLECT_101:
        raise NoEquivalent(f"{name} with border_mode {border}")


def gaussian_blur(transform: Any) -> Step:
    _blur_border(transform, "GaussianBlur")
    low, high = (int(v) for v in transform.blur_limit)
    if (low == 0) != (high == 0):
        raise NoEquivalent("GaussianBlur with a blur_limit range from 0")
    return GaussianBlur((low, high), tuple(float(v) for v in transform.sigma_limit), float(transform.p))


def motion_blur(transform: Any) -> Step:
    _blur_border(transform, "MotionBlur")
    return MotionBlur(tuple(int(v) for v in transform.blur_limit), tuple(float(v) for v in transform.angle_range),
                      tuple(float(v) for v in transform.direction_range), bool(transform.allow_shifted),
                      float(transform.p))


def gauss_noise(transform: Any) -> Step:
    if not math.isclose(float(transform.noise_scale_factor), 1.0):
        raise NoEquivalent("GaussNoise with noise_scale_factor below 1")
    return GaussNoise(bool(transform.per_channel), tuple(float(v) for v in transform.std_range),
                      tuple(float(v) for v in transform.mean_range), float(transform.p))
