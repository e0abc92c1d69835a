"""Which device a run uses, and mixed precision on it; shared by training, evaluation and prediction."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch

from datakit.errors import DatakitError


def select_device(setting: str, local_rank: int = 0) -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU; an explicit choice that is not available is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if setting == "auto":
        setting = "cuda" if cuda else "mps" if mps else "cpu"
    if setting == "cuda":
        if not cuda:
            raise DatakitError("train.device is cuda but no CUDA GPU is available (use auto or cpu)")
        return torch.device("cuda", local_rank)
    if setting == "mps" and not mps:
        raise DatakitError("train.device is mps but Apple MPS is not available (use auto or cpu)")
    return torch.device(setting)


def autocast(device: torch.device, amp: bool | str) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """A context factory for the forward pass, and a gradient scaler when float16 needs one."""
    enabled = device.type == "cuda" if amp == "auto" else bool(amp)
    if not enabled or device.type == "mps":
        return contextlib.nullcontext, None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return (lambda: torch.autocast("cuda", dtype=dtype)), scaler
    return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), None
