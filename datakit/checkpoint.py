"""Checkpoints: a dict of state dicts and plain values saved with ``torch.save``, read back with
``torch.load(weights_only=True)`` so that opening a checkpoint can never run code.

A run directory keeps ``checkpoints/best.pt`` (best validation metric) and ``checkpoints/last.pt``
(end of the last epoch, or the moment of a Ctrl-C; what ``--resume`` continues from).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datakit.atomic import write_atomic
from datakit.engine.rundir import RunDir
from datakit.errors import DatakitError

FORMAT = "datakit-checkpoint"
VERSION = 1


def checkpoint_path(run: str | os.PathLike[str], which: str = "best") -> Path:
    """The checkpoint file for a run directory (``which`` = best or last) or a file given directly."""
    path = Path(run)
    if path.is_dir():
        path = RunDir(path).checkpoint(which)
        if not path.is_file():
            raise DatakitError(f"{path}: no {which} checkpoint in this run (did training finish an epoch?)")
        return path
    if not path.exists():
        raise DatakitError(f"{path}: no such run directory or checkpoint file")
    return path


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a crash or Ctrl-C mid-write leaves the previous file intact."""
    write_atomic(path, lambda tmp: torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp))


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        raise DatakitError(f"{path}: refused: the file holds objects other than tensors and plain values, "
                           f"or is damaged ({first[:160]})") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatakitError(f"{path}: not a readable checkpoint (damaged or not a PyTorch file: {first[:160]})") from None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A datakit checkpoint's contents; DatakitError for a damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DatakitError(f"{path}: checkpoint not found")
    data = _load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatakitError(f"{path}: not a datakit checkpoint (a state dict from another tool? use it as "
                           "initial weights with --weights instead)")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise DatakitError(f"{path}: checkpoint version {data.get('version')!r} was written by a newer datakit; upgrade")
    for key in ("model", "config", "classes", "preprocess", "epoch"):
        if key not in data:
            raise DatakitError(f"{path}: checkpoint is missing '{key}' (incomplete or damaged)")
    return data


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Model tensors from a datakit checkpoint or a plain PyTorch state dict (torchvision .pth)."""
    path = Path(path)
    if not path.is_file():
        raise DatakitError(f"{path}: weights file not found")
    data = _load(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        data = data.get("model")
    elif isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]  # the common {"state_dict": ...} wrapping of other tools
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise DatakitError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    # weights saved from a DDP-wrapped model carry a "module." prefix
    return {k.removeprefix("module."): v for k, v in data.items()}


def load_initial_weights(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Copy every tensor whose name and shape match; say what was kept fresh and why."""
    state = read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise DatakitError(f"{path}: no tensor names and shapes match this model (weights of another architecture?)")
    model.load_state_dict(usable, strict=False)
    reshaped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    fresh = [k for k in own if k not in usable]
    note = f"initial weights: {len(usable)} of {len(own)} tensors from {path}"
    if fresh:
        listed = ", ".join(fresh[:4]) + (f" and {len(fresh) - 4} more" if len(fresh) > 4 else "")
        note += f"; kept fresh: {listed}" + (" (shape differs, e.g. another class count)" if reshaped else "")
    return note


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DatakitError(f"{path}: weights do not fit the model its config describes ({' '.join(first[:2])[:200]})") from None
