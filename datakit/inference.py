"""A trained run ready to score images: model, classes and preprocessing from one checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from datakit import config as cfg
from datakit.checkpoint import checkpoint_path, load_model_state, read_checkpoint
from datakit.data import Preprocess
from datakit.errors import DatakitError
from datakit.models import build_model


@dataclass
class LoadedRun:
    checkpoint: Path
    run_dir: Path | None  # None when a checkpoint file was given on its own
    model: nn.Module
    classes: list[str]
    preprocess: Preprocess
    config: cfg.TrainConfig
    info: dict[str, Any]  # run.json when there is one
    device: torch.device
    epoch: int
    task: Any = None  # the run's Task object (datakit.tasks)
    source: str | None = None  # which run a sweep or pipeline folder led to (datakit.run_source)

    def probabilities(self, images: np.ndarray, batch_size: int = 256,
                      on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Class probabilities (N x classes) for uint8 NxHxWxC images already resized."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self.preprocess.to_tensor(images[start:start + batch_size]).to(self.device)
                out.append(self.task.outputs_to_numpy(self.model(batch)))
                if on_batch is not None:
                    on_batch(len(batch))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)


def load_run(run: str | os.PathLike[str], checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Load a run directory's best/last checkpoint (or a checkpoint file) for inference; a sweep
    folder means its best trial, a pipeline folder its last train or sweep step."""
    from datakit.engine.device import select_device
    from datakit.engine.rundir import RunDir
    from datakit.run_source import find_run

    found = find_run(run)
    run = found.path
    path = checkpoint_path(run, checkpoint)
    data = read_checkpoint(path)
    try:
        config = cfg.from_dict(data["config"])
        preprocess = Preprocess.from_dict(data["preprocess"])
        classes = [str(c) for c in data["classes"]]
    except (DatakitError, KeyError, TypeError) as exc:
        raise DatakitError(f"{path}: checkpoint config cannot be read ({exc})") from None
    from datakit.tasks import get_task

    # runs saved before tasks existed are classification runs
    task = get_task(str(data.get("task") or "classification"))(config)
    model = build_model(config.model, preprocess.channels, len(classes), (preprocess.height, preprocess.width),
                        task=task.name)
    load_model_state(model, data["model"], path)
    target = select_device(device)
    model.to(target).eval()
    run_dir = Path(run) if Path(run).is_dir() else None
    info = RunDir(run_dir).read_info(missing_ok=True) if run_dir is not None else {}
    return LoadedRun(path, run_dir, model, classes, preprocess, config, info, target, int(data["epoch"]), task,
                     found.source)


def collect_images(items: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, and image files found under folders (recursively, sorted)."""
    from datakit.imageinfo import IMAGE_EXTENSIONS

    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.exists():  # a FIFO or device becomes a row with its error; it is never opened
            found.append(path)
        else:
            raise DatakitError(f"{path}: no such file or folder")
    if not found:
        raise DatakitError("no images to predict (folders given hold no image files)")
    return found
