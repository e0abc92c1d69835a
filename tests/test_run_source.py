"""`eval` and `predict` given a sweep folder or a pipeline folder use its best or last run and say which."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError
from datakit.evaluation import evaluate
from datakit.pipeline import run_pipeline
from datakit.prediction import predict
from datakit.sweeping import sweep
from tests.test_sweep import FAST, _space, digits_300  # noqa: F401  (digits_300 is a fixture)

ONE_EPOCH = {**FAST, "epochs": 1}


def _images(manifest: Path, count: int = 3) -> list[Path]:
    from datakit.manifest import load_manifest

    m = load_manifest(manifest)
    return [Path(m.root()) / p for p in m.images["path"].head(count)]


def test_eval_and_predict_on_a_sweep_folder_use_its_best_trial_and_say_so(digits_300: Path, tmp_path: Path) -> None:
    result = sweep(digits_300, _space({"optim.lr": [0.01, 0.03]}) | {"set": ONE_EPOCH}, tmp_path / "sweep",
                   show_progress=False)
    best = result.best["trial"]
    trial_dir = tmp_path / "sweep" / "trials" / f"trial-{best:04d}"

    metrics = evaluate(tmp_path / "sweep", split="val", show_progress=False)
    assert Path(metrics["run"]) == trial_dir and Path(metrics["checkpoint"]) == trial_dir / "checkpoints" / "best.pt"
    assert metrics["run_source"].startswith(f"sweep {tmp_path / 'sweep'}: best trial {best}, val_accuracy ")
    # scored on the same validation images the sweep chose on: the same accuracy
    assert metrics["accuracy"] == pytest.approx(result.best["val_accuracy"])
    assert (trial_dir / "eval-val" / "metrics.json").is_file()

    images = _images(digits_300)
    table = predict(tmp_path / "sweep", images)
    assert table["error"].isna().all() and table.attrs["run_source"] == metrics["run_source"]
    assert table["label"].tolist() == predict(trial_dir, images)["label"].tolist()

    runner = CliRunner()
    shown = runner.invoke(app, ["eval", str(tmp_path / "sweep"), "--split", "val"], terminal_width=300)
    assert shown.exit_code == 0, shown.output
    assert f"using sweep {tmp_path / 'sweep'}: best trial {best}" in shown.stdout
    as_json = runner.invoke(app, ["predict", str(tmp_path / "sweep"), *map(str, images), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert len(json.loads(as_json.stdout)) == 3 and f"best trial {best}" in as_json.stderr  # stdout stays JSON

    # a sweep with no completed trial says so instead of "no best checkpoint"
    (tmp_path / "sweep" / "best.json").unlink()
    with pytest.raises(DatakitError, match="this sweep has no completed trial yet"):
        evaluate(tmp_path / "sweep", show_progress=False)


def test_eval_and_predict_on_a_pipeline_folder_use_its_last_train_or_sweep_step(digits_300: Path,
                                                                                 tmp_path: Path) -> None:
    train_only = {"name": "t", "steps": [{"train": {"manifest": str(digits_300), **ONE_EPOCH}}]}
    run_pipeline(train_only, tmp_path / "t", show_progress=False)
    # moved after it ran: the paths it recorded are read relative to where it is now
    shutil.move(tmp_path / "t", tmp_path / "moved")
    metrics = evaluate(tmp_path / "moved", split="val", show_progress=False)
    assert Path(metrics["run"]) == tmp_path / "moved" / "train"
    assert metrics["run_source"] == f"pipeline {tmp_path / 'moved'}: step 'train' -> {tmp_path / 'moved' / 'train'}"

    both = {"name": "b", "steps": [{"train": {"manifest": str(digits_300), **ONE_EPOCH}},
                                   {"sweep": {"manifest": str(digits_300), "space": _space({"optim.lr": [0.02]}),
                                              **{k: v for k, v in ONE_EPOCH.items() if k != "optim.lr"}}}]}
    ran = run_pipeline(both, tmp_path / "b", show_progress=False)
    from datakit.pipeline import _step_results

    assert set(ran.results("sweep")) <= set(_step_results("sweep"))  # what references are checked against
    table = predict(tmp_path / "b", _images(digits_300))
    assert table["error"].isna().all()
    assert table.attrs["run_source"].startswith(f"pipeline {tmp_path / 'b'}: step 'sweep', sweep "
                                                f"{tmp_path / 'b' / 'sweep'}: best trial 0")
    assert table.attrs["run_source"].endswith(str(tmp_path / "b" / "sweep" / "trials" / "trial-0000"))

    nothing = {"name": "n", "steps": [{"info": {"manifest": str(digits_300)}}]}
    run_pipeline(nothing, tmp_path / "n", show_progress=False)
    with pytest.raises(DatakitError, match="no completed train or sweep step"):
        predict(tmp_path / "n", _images(digits_300))
