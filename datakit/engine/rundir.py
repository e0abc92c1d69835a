"""The run directory: the one place that knows its layout.

::

    config.yaml          the full resolved config (every key, defaults included)
    run.json             task, manifest, classes, preprocessing, status, results
    splits.csv           which image id went to which split (generated splits included)
    metrics.csv          one row per epoch: train/val loss and the task's metrics, lr, seconds
    curves.png           loss and metrics per epoch, train vs val
    checkpoints/best.pt  weights with the best validation metric
    checkpoints/last.pt  end of the last epoch (or the moment of Ctrl-C): what --resume continues
    eval-SPLIT/          what ``datakit eval`` writes by default

Training, evaluation, inference and the sweep all reach these files through ``RunDir``; every
write is atomic (``datakit.atomic``). This module imports neither torch nor pandas at import time.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from datakit.atomic import write_atomic, write_json, write_text
from datakit.errors import DatakitError

CHECKPOINT_NAMES = ("best", "last")


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    # ---- the layout

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info(self) -> Path:
        return self.path / "run.json"

    @property
    def splits(self) -> Path:
        return self.path / "splits.csv"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "best") -> Path:
        if which not in CHECKPOINT_NAMES:
            raise DatakitError(f"unknown checkpoint {which!r}; choose best or last")
        return self.checkpoints / f"{which}.pt"

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    def eval_dir(self, split: str) -> Path:
        return self.path / f"eval-{split}"

    # ---- checks

    def is_run(self) -> bool:
        return self.info.is_file()

    def check_new(self, resume: bool) -> None:
        """Training may write here: an empty or missing folder, or (resuming) a run with last.pt.

        A run that ended before its first checkpoint (a diverged loss, a bad augmentation) holds
        only its own start files: training again replaces them, since --resume has nothing to
        continue and the folder is not empty (each message sent the user to the other)."""
        if resume:
            if not self.last.is_file():
                why = " (the run here ended before its first checkpoint: train again without --resume)" \
                    if self.never_checkpointed() else ""
                raise DatakitError(f"{self.path}: nothing to resume (no checkpoints/last.pt in this folder){why}")
            return
        if self.never_checkpointed():
            for entry in self.path.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            return
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            hint = " (it holds a run: add --resume to continue it)" if self.info.exists() else ""
            raise DatakitError(f"{self.path}: output folder exists and is not empty{hint}; choose a new folder")

    def never_checkpointed(self) -> bool:
        """A run folder holding only what a run writes before its first epoch ends (no checkpoint)."""
        if not (self.path.is_dir() and self.info.is_file()) or self.last.exists() or self.best.exists():
            return False
        start_files = {self.config.name, self.info.name, self.splits.name, self.metrics.name, self.curves.name,
                       self.checkpoints.name}
        # "running" may be a run training right now in another process: never replaced
        return all(entry.name in start_files for entry in self.path.iterdir()) and \
            (not self.checkpoints.exists() or not any(self.checkpoints.iterdir())) and \
            self.read_info(missing_ok=True).get("status") not in (None, "running")

    # ---- reading

    def read_info(self, missing_ok: bool = False) -> dict[str, Any]:
        """run.json; ``missing_ok`` returns {} for a missing or unreadable file instead of raising."""
        if not self.info.is_file():
            if missing_ok:
                return {}
            raise DatakitError(f"{self.path}: not a datakit run (no run.json)")
        try:
            return json.loads(self.info.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if missing_ok:
                return {}
            detail = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise DatakitError(f"{self.info}: invalid JSON ({detail})") from None

    def read_splits(self) -> Any:
        """splits.csv as a DataFrame of strings (id, path, label, split)."""
        import pandas as pd

        return pd.read_csv(self.splits, dtype=str)

    def split_of(self) -> dict[str, str]:
        """Image id -> the split the run trained with (splits.csv)."""
        table = self.read_splits()
        return dict(zip(table["id"].astype(str), table["split"].astype(str)))

    def read_config(self) -> dict[str, Any] | None:
        import yaml

        return yaml.safe_load(self.config.read_text(encoding="utf-8")) if self.config.is_file() else None

    # ---- writing (atomic)

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self.info, info)

    def update_info(self, drop: Sequence[str] = (), **fields: Any) -> None:
        """Change some fields of an existing run.json (a sweep marking a pruned trial); no-op without one."""
        info = self.read_info(missing_ok=True)
        if not info:
            return
        for key in drop:
            info.pop(key, None)
        info.update(fields)
        self.write_info(info)

    def write_config(self, text: str) -> None:
        write_text(self.config, text)

    def write_splits(self, table: Any) -> None:
        write_atomic(self.splits, lambda tmp: table.to_csv(tmp, index=False))

    def write_metrics(self, history: list[dict[str, float]], columns: Sequence[str]) -> None:
        import pandas as pd

        write_atomic(self.metrics, lambda tmp: pd.DataFrame(history, columns=list(columns)).to_csv(tmp, index=False))
