"""Training on real generated images: it learns, records everything, stops early, resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from datakit import config as cfg
from datakit.checkpoint import read_checkpoint
from datakit.data import Preprocess, channel_stats, decode_all
from datakit.models import build_model
from datakit.training import TrainingDiverged, train
from tests.conftest import REPO, TINY_TRAIN, default_sigint


def test_a_small_cnn_learns_digits_far_above_chance(digits_run) -> None:
    result = digits_run
    assert result.status == "completed" and result.epochs_run == 6
    assert result.classes == [str(d) for d in range(10)]
    # chance is 0.10; a model that learns nothing cannot get near these
    assert result.test_accuracy is not None and result.test_accuracy >= 0.8
    assert result.best_metric >= 0.8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_epoch == max(range(1, 7), key=lambda e: result.history[e - 1]["val_accuracy"])


def test_run_directory_holds_config_metrics_curves_splits_and_statistics(digits_run, digits_small: Path) -> None:
    run = digits_run.run_dir
    saved = cfg.resolve_config(run / "config.yaml")
    # the keys not set were derived from the data (engine/defaults.py); run.json says which and why
    derived = {d["key"]: d["value"] for d in json.loads((run / "run.json").read_text())["defaults"]["derived"]}
    assert not set(derived) & {cfg.resolve_key(k) for k in ("epochs", *TINY_TRAIN)}
    assert saved == cfg.resolve_config(None, {"epochs": 6, **TINY_TRAIN, **derived})
    metrics = pd.read_csv(run / "metrics.csv")
    # the task's metric names (classification: accuracy, macro_f1) flow into metrics.csv
    assert list(metrics.columns) == ["epoch", "train_loss", "train_accuracy", "train_macro_f1", "val_loss",
                                     "val_accuracy", "val_macro_f1", "lr", "seconds"]
    assert metrics["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert metrics["val_accuracy"].tolist() == pytest.approx([h["val_accuracy"] for h in digits_run.history])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    splits = pd.read_csv(run / "splits.csv", dtype=str)
    assert len(splits) == 600 and splits["id"].is_unique
    assert splits["split"].value_counts().to_dict() == {"train": 420, "val": 90, "test": 90}
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["split_source"] == "generated"
    assert info["test_accuracy"] == pytest.approx(digits_run.test_accuracy)
    # normalization statistics are those of the train split, at the training size
    pre = Preprocess.from_dict(info["preprocess"])
    assert (pre.height, pre.width, pre.channels) == (8, 8, 1)
    from datakit.manifest import load_manifest

    root = load_manifest(digits_small).root()
    train_paths = [root / p for p in splits.loc[splits["split"] == "train", "path"]]
    mean, std = channel_stats(decode_all(train_paths, Preprocess(8, 8, 1, "stretch")))
    assert pre.mean == pytest.approx(mean) and pre.std == pytest.approx(std)


def test_checkpoints_are_plain_state_dicts_that_load_with_weights_only(digits_run) -> None:
    for name in ("best", "last"):
        data = torch.load(digits_run.run_dir / "checkpoints" / f"{name}.pt", weights_only=True)
        assert data["format"] == "datakit-checkpoint"
        config = cfg.from_dict(data["config"])
        pre = Preprocess.from_dict(data["preprocess"])
        model = build_model(config.model, pre.channels, len(data["classes"]), (pre.height, pre.width))
        model.load_state_dict(data["model"])
    assert read_checkpoint(digits_run.best_checkpoint)["epoch"] == digits_run.best_epoch
    assert read_checkpoint(digits_run.last_checkpoint)["epoch"] == 6


def test_early_stopping_stops_after_patience_epochs_without_improvement(digits_small: Path, tmp_path: Path) -> None:
    # no later epoch can beat the first by 10 in val loss: patience 2 stops after epoch 3
    result = train(digits_small, output=tmp_path / "run", show_progress=False,
                   **{**TINY_TRAIN, "epochs": 20, "train.monitor": "val_loss", "train.min_delta": 10.0, "patience": 2})
    assert result.status == "early_stopped"
    assert result.epochs_run == 3 and result.best_epoch == 1
    assert read_checkpoint(result.best_checkpoint)["epoch"] == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "early_stopped"


def test_resume_continues_from_the_saved_epoch_as_if_never_stopped(digits_small: Path, tmp_path: Path) -> None:
    settings = {**TINY_TRAIN, "model.head.dropout": 0.3, "model.head.dense": [16]}  # dropout: RNG state matters
    straight = train(digits_small, output=tmp_path / "straight", show_progress=False, epochs=3, **settings)
    first = train(digits_small, output=tmp_path / "resumed", show_progress=False, epochs=2, **settings)
    assert first.epochs_run == 2
    resumed = train(None, output=tmp_path / "resumed", resume=True, show_progress=False, epochs=3)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    timeless = [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert timeless[:2] == [{k: v for k, v in h.items() if k != "seconds"} for h in first.history]
    assert resumed.history[2]["train_loss"] == pytest.approx(straight.history[2]["train_loss"], rel=1e-5)
    a = read_checkpoint(straight.last_checkpoint)["model"]
    b = read_checkpoint(resumed.last_checkpoint)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert pd.read_csv(tmp_path / "resumed" / "metrics.csv")["epoch"].tolist() == [1, 2, 3]


def test_a_resumed_run_keeps_the_earlier_sessions_signs_and_time(digits_small: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """run.json after --resume said warnings [] and the last session's seconds only."""
    from datakit.tasks.classification import ClassificationTask

    seen: list[int] = []

    def sign_at_epoch_two(self, train_metrics, val_metrics, data):
        seen.append(1)
        return {"single_class": "validation predicts one class only"} if len(seen) == 1 else {}

    monkeypatch.setattr(ClassificationTask, "diagnose", sign_at_epoch_two)
    settings = {**TINY_TRAIN, "schedule.warmup_epochs": 0, "train.patience": None}
    first = train(digits_small, output=tmp_path / "run", show_progress=False, epochs=2, **settings)
    assert [w["epochs"] for w in first.warnings] == [[2]]
    resumed = train(None, output=tmp_path / "run", resume=True, show_progress=False, epochs=4)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [(w["kind"], w["epochs"]) for w in info["warnings"]] == [("single_class", [2])] == \
        [(w["kind"], w["epochs"]) for w in resumed.warnings]
    assert info["seconds"] == pytest.approx(resumed.seconds, abs=0.01) and resumed.seconds > first.seconds


def test_nan_loss_stops_training_says_so_and_keeps_the_best_checkpoint(digits_small: Path, tmp_path: Path) -> None:
    # epoch 1 trains normally; the step schedule then multiplies lr by 1e30 and the loss becomes NaN
    settings = {**TINY_TRAIN, "optimizer": "sgd", "schedule.name": "step", "schedule.step_size": 1,
                "schedule.gamma": 1e30}
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 2, batch \d+: training stopped; "
                                               r"best checkpoint \(epoch 1\) kept"):
        train(digits_small, output=tmp_path / "run", show_progress=False, epochs=5, **settings)
    best = read_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["epoch"] == 1
    assert all(torch.isfinite(t.float()).all() for t in best["model"].values())
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1  # NaN weights never saved
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "diverged" and info["diverged_at"]["epoch"] == 2


def test_a_run_that_diverged_before_its_first_checkpoint_can_be_trained_again(digits_small: Path,
                                                                              tmp_path: Path) -> None:
    """'output folder exists ... add --resume' and '--resume: nothing to resume' sent the user in a
    circle; a run with no checkpoint is now replaced by a new one, and --resume says why it cannot."""
    from datakit.errors import DatakitError

    with pytest.raises(TrainingDiverged, match="no checkpoint was saved"):
        train(digits_small, output=tmp_path / "run", show_progress=False, epochs=2, **{**TINY_TRAIN, "lr": 1e12})
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "diverged"
    with pytest.raises(DatakitError, match="ended before its first checkpoint: train again without --resume"):
        train(None, output=tmp_path / "run", resume=True, show_progress=False)
    again = train(digits_small, output=tmp_path / "run", show_progress=False, epochs=1, **TINY_TRAIN)
    assert again.status == "completed" and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    (tmp_path / "run" / "notes.txt").write_text("mine")  # a folder with other files is never cleared
    with pytest.raises(DatakitError, match="exists and is not empty"):
        train(digits_small, output=tmp_path / "run", show_progress=False, epochs=1, **TINY_TRAIN)


def test_class_weights_and_balanced_sampler_train(digits_small: Path, tmp_path: Path) -> None:
    for balance in ("weights", "sampler"):
        result = train(digits_small, output=tmp_path / balance, show_progress=False, epochs=2,
                       **{**TINY_TRAIN, "data.balance": balance})
        assert result.history[-1]["val_accuracy"] > 0.3


def test_augmentation_and_uncached_streaming_train(digits_small: Path, tmp_path: Path) -> None:
    result = train(digits_small, output=tmp_path / "run", show_progress=False, epochs=2,
                   **{**TINY_TRAIN, "data.cache": False, "augment": [{"Affine": {"rotate": [-5, 5], "p": 0.5}}]})
    assert result.history[-1]["val_accuracy"] > 0.3
    assert json.loads((tmp_path / "run" / "run.json").read_text())["cache"] is False


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "datakit", *args]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_finishes(digits_small: Path, tmp_path: Path, stop_signal) -> None:
    run = tmp_path / "run"
    sets = [a for k, v in TINY_TRAIN.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # early stopping off: on a loaded machine a run that stops early can end before the signal is sent
    process = subprocess.Popen(_cli("train", str(digits_small), "-o", str(run), "--epochs", "500", "--patience", "0", *sets),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        metrics = run / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.1)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    last = read_checkpoint(run / "checkpoints" / "last.pt")
    done = int(last["epoch"])
    assert done >= 2 and last["partial_epoch"] is True
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = train(None, output=run, resume=True, show_progress=False, epochs=done + 1)
    assert resumed.epochs_run == done + 1 and resumed.status == "completed"


def test_cli_train_prints_the_resolved_config_and_lists_keys(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--print-config", "--lr", "0.5", "--set", "model.conv.filters=[4,8]"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["optim"]["lr"] == 0.5 and printed["model"]["conv"]["filters"] == [4, 8]
    listed = runner.invoke(app, ["train", "--list-keys"], terminal_width=200)
    assert listed.exit_code == 0 and "model.conv.filters" in listed.stdout and "optim.lr" in listed.stdout


def test_a_callback_sees_every_epoch_and_may_stop_training(digits_small: Path, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    seen: list[dict] = []

    def callback(record: dict) -> None:
        seen.append(record)
        if record["epoch"] == 2:
            raise Stop("enough")

    with pytest.raises(Stop):
        train(digits_small, output=tmp_path / "run", show_progress=False, callback=callback, epochs=5, **TINY_TRAIN)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert set(seen[0]) == {"epoch", "train_loss", "train_accuracy", "train_macro_f1", "val_loss", "val_accuracy",
                            "val_macro_f1", "lr", "seconds"}
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "stopped_by_callback" and "Stop: enough" in info["note"]
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 2
