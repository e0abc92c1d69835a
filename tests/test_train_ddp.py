"""`torchrun --nproc_per_node 2 -m datakit train`: DDP with two CPU processes on gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from datakit.checkpoint import read_checkpoint
from datakit.evaluation import evaluate
from tests.conftest import REPO, TINY_TRAIN


def test_two_process_ddp_training_writes_one_run_that_learns(digits_small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = [a for k, v in TINY_TRAIN.items() if k != "train.threads" for a in ("--set", f"{k}={json.dumps(v)}")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "datakit", "train", str(digits_small), "-o", str(run), "--epochs", "3", "--quiet", "--json",
               *sets]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # only the first process reports and writes
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["epochs_run"] == 3 and result["status"] == "completed"
    info = json.loads((run / "run.json").read_text())
    assert info["processes"] == 2 and info["device"] == "cpu"
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert metrics["val_accuracy"].iloc[-1] > 0.5  # chance is 0.1
    assert "Grad strides" not in done.stderr
    assert read_checkpoint(run / "checkpoints" / "best.pt")["model"]
    # the DDP-trained checkpoint is an ordinary one: eval uses it like any other
    assert evaluate(run, show_progress=False)["accuracy"] == result["test_accuracy"]
