"""What every batched step is: the ``Step`` protocol and the helpers the steps share."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

_CONSTANTS: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}

LINEAR, NEAREST = 1, 0  # cv2.INTER_LINEAR, cv2.INTER_NEAREST
CONSTANT, REPLICATE = 0, 1  # cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE


class Step(Protocol):
    """One transform, in two halves: ``sample`` draws every image's parameters on the CPU (numpy: a
    handful of microseconds, where as many small GPU kernels would cost milliseconds per batch),
    ``apply`` runs them on the batch's device. An image the step does not touch gets parameters
    that change nothing (after the rounding to uint8 values). ``generator`` (a torch generator on
    the batch's device, seeded from the same numpy stream) is for what is drawn per pixel."""

    width: int  # parameters per image
    p: float

    def sample(self, n: int, height: int, width: int, active: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def apply(self, images: torch.Tensor, params: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class NoEquivalent(Exception):
    """A transform's settings that have no batched version (the message names them)."""


def chosen(n: int, p: float, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Which images a step with probability ``p`` applies to (drawn for every image, as albumentations does)."""
    return active & (rng.random(n) < p)


def drawn(touched: np.ndarray, limits: tuple[float, float], rng: np.random.Generator, otherwise: float) -> np.ndarray:
    """A uniform draw in ``limits`` for every image (albumentations draws for each), ``otherwise`` where untouched."""
    return np.where(touched, rng.uniform(*limits, len(touched)), otherwise)


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    """OpenCV's saturate_cast to uint8 values: round half to even, then clip (still float)."""
    return images.round_().clamp_(0, 255)


def as_truncated_uint8(images: torch.Tensor) -> torch.Tensor:
    """albucore's uint8 lookup tables: clip, then truncate (not round); integers stay as they are (still float)."""
    return images.clamp_(0, 255).floor_()


def constant(values: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A module-level table on ``device``, copied there once: a copy from pageable host memory per batch
    would wait for the GPU to finish its queue."""
    key = (id(values), str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.as_tensor(np.asarray(values), dtype=dtype).to(device)
    return _CONSTANTS[key]
