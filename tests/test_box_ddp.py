"""`torchrun --nproc_per_node 2 -m datakit train` for box tasks: detection and localization with two
CPU processes on gloo write one ordinary run that `datakit eval` scores to the same numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from datakit.checkpoint import read_checkpoint
from datakit.evaluation import evaluate
from tests.conftest import REPO

TINY = {"data.image_size": 32, "model.conv.filters": [8, 16], "train.batch_size": 8, "data.val_fraction": 0.25,
        "data.test_fraction": 0.25, "device": "cpu"}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from datakit.ingest import ingest
    from datakit.samples import make_shapes

    root = tmp_path_factory.mktemp("ddp-shapes")
    out = {}
    for task, objects in (("detection", (1, 3)), ("localization", (1, 1))):
        make_shapes(root / task, count=32, size=48, objects=objects, seed=1)
        ingest(root / task, root / f"{task}.manifest", format="coco", show_progress=False)
        out[task] = root / f"{task}.manifest"
    return out


@pytest.mark.slow  # two torchrun launches of two processes each: about a minute on 2 busy cores
@pytest.mark.parametrize("task,metric", [("detection", "map50"), ("localization", "box_iou")])
def test_two_process_ddp_trains_a_box_task(shapes: dict[str, Path], tmp_path: Path, task: str, metric: str) -> None:
    run = tmp_path / "run"
    sets = [a for k, v in {**TINY, "task": task}.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "datakit", "train", str(shapes[task]), "-o", str(run), "--epochs", "2", "--quiet", "--json",
               *sets]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])  # only the first process reports
    assert result["task"] == task and result["epochs_run"] == 2 and result["status"] == "completed"
    info = json.loads((run / "run.json").read_text())
    assert info["processes"] == 2 and info["device"] == "cpu"
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert all(math.isfinite(v) for v in metrics["train_loss"])
    assert metrics[f"val_{metric}"].between(0.0, 1.0).all()
    assert read_checkpoint(run / "checkpoints" / "best.pt")["model"]
    # the DDP-trained checkpoint is an ordinary one: eval on the test split gives the run's own test numbers
    scored = evaluate(run, split="test", show_progress=False)
    assert scored[metric] == pytest.approx(result["test_metrics"][metric], abs=1e-6)
