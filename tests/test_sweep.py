"""Sweeps: real (tiny) training runs per trial, searched by Optuna, recorded, resumable, shared."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from datakit.errors import DatakitError
from datakit.sweep_space import load_space
from datakit.sweeping import RESULT_COLUMNS, SweepInterrupted, sweep
from tests.conftest import REPO, TINY_TRAIN, _subset_manifest

# every trial: a tiny CNN, 2 epochs, on 300 digits (about a second each)
FAST = {**TINY_TRAIN, "epochs": 2}


@pytest.fixture(scope="module")
def digits_300(digits_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _subset_manifest(digits_manifest, digits_manifest.parent / "subset30.manifest", 30)


def _space(params: dict, **fields: object) -> dict:
    return {"sampler": "grid", "pruner": "none", "set": FAST, "params": params, **fields}


def test_grid_covers_every_combination_and_results_have_every_column(digits_300: Path, tmp_path: Path) -> None:
    params = {"optim.lr": [0.01, 0.03], "model.conv.filters": [[8], [8, 16]]}
    result = sweep(digits_300, _space(params), tmp_path / "sweep", show_progress=False)

    table = result.table
    assert len(table) == 4 and (table["state"] == "complete").all()
    combos = {(row["optim.lr"], row["model.conv.filters"]) for _, row in table.iterrows()}
    assert combos == set(itertools.product([0.01, 0.03], ["[8]", "[8, 16]"]))
    columns = ["trial", "state", "value", "optim.lr", "model.conv.filters", *RESULT_COLUMNS]
    for name in ("results.csv", "results.parquet"):
        path = tmp_path / "sweep" / name
        saved = pd.read_csv(path) if name.endswith("csv") else pd.read_parquet(path)
        assert list(saved.columns) == columns
        assert saved["trial"].tolist() == [0, 1, 2, 3]
    assert table["val_accuracy"].between(0, 1).all() and table["test_accuracy"].between(0, 1).all()
    assert (table["epochs"] == 2).all() and (table["seconds"] > 0).all()
    # a second conv block adds parameters; the count is of the model actually trained
    by_filters = table.groupby("model.conv.filters")["parameters"].first()
    assert by_filters["[8, 16]"] > by_filters["[8]"] > 0
    for run_dir in table["run_dir"]:
        assert (Path(run_dir) / "checkpoints" / "best.pt").is_file()
        assert json.loads((Path(run_dir) / "run.json").read_text())["status"] == "completed"

    # the best trial is the best by validation (ties: lower val loss), whatever its test accuracy
    best = json.loads((tmp_path / "sweep" / "best.json").read_text())
    top = table.sort_values(["value", "val_loss"], ascending=[False, True]).iloc[0]
    assert best["trial"] == top["trial"] and best["value"] == pytest.approx(top["val_accuracy"])
    assert best["params"]["model.conv.filters"] in ([8], [8, 16])
    assert best["config"]["optim"]["lr"] == best["params"]["optim.lr"]
    assert "validation" in best["note"]
    state = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert state["storage"].startswith("sqlite:///") and (tmp_path / "sweep" / "sweep.db").is_file()


def test_a_crashing_trial_is_recorded_as_failed_and_the_sweep_goes_on(digits_300: Path, tmp_path: Path) -> None:
    # five pooled blocks shrink an 8x8 image to nothing: that trial raises while building its model
    params = {"model.conv.filters": [[8], [8, 8, 8, 8, 8]]}
    result = sweep(digits_300, _space(params), tmp_path / "sweep", show_progress=False)
    table = result.table.set_index("model.conv.filters")
    assert table.loc["[8, 8, 8, 8, 8]", "state"] == "failed"
    assert "shrink" in table.loc["[8, 8, 8, 8, 8]", "error"]
    assert table.loc["[8]", "state"] == "complete" and pd.isna(table.loc["[8]", "error"])
    assert result.best["params"] == {"model.conv.filters": [8]}
    assert result.counts == {"complete": 1, "failed": 1}


def test_hopeless_trials_are_pruned_and_recorded_as_pruned(digits_300: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    # queue a good then a hopeless learning rate, so the order does not depend on a sampler
    study = optuna.create_study(storage=storage, study_name="prune", direction="maximize")
    study.enqueue_trial({"optim.lr": 0.01})
    study.enqueue_trial({"optim.lr": 1e-7})
    space = _space({"optim.lr": [0.01, 1e-7]}, sampler="random", trials=2,
                   pruner={"name": "median", "startup_trials": 1, "warmup_epochs": 0})
    space["set"] = {**FAST, "epochs": 4}
    result = sweep(digits_300, space, tmp_path / "sweep", storage=storage, study_name="prune", show_progress=False)
    rows = result.table.set_index("trial")
    assert rows.loc[0, "state"] == "complete" and rows.loc[0, "epochs"] == 4
    assert rows.loc[1, "state"] == "pruned" and rows.loc[1, "epochs"] < 4
    assert rows.loc[1, "val_accuracy"] < rows.loc[0, "val_accuracy"]
    info = json.loads((Path(rows.loc[1, "run_dir"]) / "run.json").read_text())
    assert info["status"] == "pruned" and "error" not in info


def test_an_interrupted_sweep_resumes_without_redoing_finished_trials(digits_300: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.training

    real_train = datakit.training.train
    calls: list[str] = []

    def train_then_ctrl_c(manifest, config, output, **kwargs):
        calls.append(Path(output).name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second trial
        return real_train(manifest, config, output, **kwargs)

    space = _space({"optim.lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True}},
                   sampler="random", trials=3)
    monkeypatch.setattr(datakit.training, "train", train_then_ctrl_c)
    with pytest.raises(SweepInterrupted, match="run the same command again to resume"):
        sweep(digits_300, space, tmp_path / "sweep", show_progress=False)
    first = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert first["state"].tolist() == ["complete", "interrupted"]
    finished_mtime = (tmp_path / "sweep" / "trials" / "trial-0000" / "run.json").stat().st_mtime_ns

    monkeypatch.setattr(datakit.training, "train", lambda *a, **k: (calls.append(Path(a[2]).name), real_train(*a, **k))[1])
    result = sweep(digits_300, space, tmp_path / "sweep", show_progress=False)
    # trial 0 was kept; the interrupted trial's configuration ran again first, then one new trial
    assert calls[2:] == ["trial-0002", "trial-0003"]
    rows = result.table.set_index("trial")
    assert rows["state"].tolist() == ["complete", "interrupted", "complete", "complete"]
    assert rows.loc[2, "optim.lr"] == rows.loc[1, "optim.lr"]
    assert (tmp_path / "sweep" / "trials" / "trial-0000" / "run.json").stat().st_mtime_ns == finished_mtime

    # a third call has nothing left to do
    again = sweep(digits_300, space, tmp_path / "sweep", show_progress=False)
    assert len(again.table) == 4 and len(calls) == 4


def _start_sweep(manifest: Path, space: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "datakit", "sweep", str(manifest), "--space", str(space),
                             "-o", str(output), "-q", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _kill_when(worker: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    """SIGKILL ``worker`` as soon as ``path`` exists (a trial's first epoch is written): no chance to
    record anything, so its trial stays "running" in the database."""
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None and not path.exists():
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=60)
    assert path.exists(), "the trial never started"


def _running(storage: str, study_name: str) -> list[int]:
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [t.number for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]


def test_a_sweep_killed_mid_trial_finishes_every_grid_combination_when_run_again_at_once(
        digits_300: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    lrs = [0.01, 0.02, 0.03]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space({"optim.lr": lrs}) | {"set": {**FAST, "epochs": 6}}))
    out = tmp_path / "sweep"
    _kill_when(_start_sweep(digits_300, space, out), out / "trials" / "trial-0001" / "metrics.csv")
    storage = f"sqlite:///{out / 'sweep.db'}"
    assert _running(storage, "sweep") == [1]  # killed mid-trial: trial 1 is left "running"

    # run again at once (no waiting for a heartbeat grace period): the dead process's trial is found
    # by its owner's pid, failed, and its combination runs again; the summary says so
    result = CliRunner().invoke(app, ["sweep", str(digits_300), "--space", str(space), "-o", str(out), "-q"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    assert "recovered: trial 1 was left running by" in printed and "(process gone): queued to run again" in printed

    table = pd.read_csv(out / "results.csv")
    assert table.loc[table["trial"] == 1, "state"].item() == "interrupted"
    assert "died mid-trial" in table.loc[table["trial"] == 1, "error"].item()
    # exactly once: one complete trial per grid combination, nothing left running or waiting
    done = table[table["state"].isin(["complete", "pruned"])]
    assert sorted(done["optim.lr"]) == lrs
    assert set(table["state"]) == {"complete", "interrupted"} and len(table) == 4
    assert _running(storage, "sweep") == []
    assert json.loads((out / "best.json").read_text())["trial"] in set(done["trial"])

    # a third run has nothing left to do and runs nothing twice
    again = sweep(digits_300, space, out, show_progress=False)
    assert again.ran_here == 0 and len(again.table) == 4 and again.recovered == []


def test_a_trial_of_a_dead_process_on_another_host_runs_again_after_the_heartbeat_grace(
        digits_300: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.sweep_storage

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space({"optim.lr": [0.01]}, sampler="random", trials=1)
                                    | {"set": {**FAST, "epochs": 40}}))
    out = tmp_path / "sweep"
    _kill_when(_start_sweep(digits_300, space, out), out / "trials" / "trial-0000" / "metrics.csv")
    storage = f"sqlite:///{out / 'sweep.db'}"
    # as if the killed process had run on another machine: its pid cannot be checked from here
    study = optuna.load_study(study_name="sweep", storage=storage)
    trial = study.get_trials()[0]
    study._storage.set_trial_user_attr(trial._trial_id, "owner", {**trial.user_attrs["owner"], "host": "elsewhere"})

    # its heartbeat stops; until the grace period passes it counts as running on that machine
    early = sweep(digits_300, space, out, show_progress=False)
    assert early.ran_here == 0 and early.running_elsewhere and early.table["state"].tolist() == ["running"]
    monkeypatch.setattr(datakit.sweep_storage, "GRACE_SECONDS", 1)
    time.sleep(1.5)
    result = sweep(digits_300, space, out, show_progress=False)
    assert result.table["state"].tolist() == ["interrupted", "complete"]
    assert result.table["optim.lr"].tolist() == [0.01, 0.01] and result.best["trial"] == 1
    assert result.recovered == ["trial 0 was left running by elsewhere:" + str(trial.user_attrs["owner"]["pid"])
                                + " (no heartbeat for 1 s): queued to run again"]


def test_resuming_with_a_different_space_is_refused(digits_300: Path, tmp_path: Path) -> None:
    sweep(digits_300, _space({"optim.lr": [0.01]}), tmp_path / "sweep", show_progress=False)
    with pytest.raises(DatakitError, match=r"different params; resume with the same space"):
        sweep(digits_300, _space({"optim.lr": [0.02]}), tmp_path / "sweep", show_progress=False)


def test_a_sweep_folder_holds_one_study_on_one_data_set(digits_300: Path, tmp_path: Path) -> None:
    """A second --study-name in the folder overwrote trial-0000 and results.csv; resuming on another
    manifest ranked trials of two data sets against each other."""
    import datakit

    out = tmp_path / "sweep"
    sweep(digits_300, _space({"optim.lr": [0.01]}), out, show_progress=False)
    with pytest.raises(DatakitError, match=r"holds the sweep of study 'sweep'; a study named 'other' needs its own"):
        sweep(digits_300, _space({"optim.lr": [0.01]}), out, study_name="other", show_progress=False)
    datakit.sample("digits", tmp_path / "d2", count=100, seed=3, show_progress=False)
    datakit.ingest(tmp_path / "d2" / "images", tmp_path / "d2.manifest", show_progress=False)
    with pytest.raises(DatakitError, match=r"was started on other data .*; resume it with that manifest"):
        sweep(tmp_path / "d2.manifest", _space({"optim.lr": [0.01]}), out, trials=2, show_progress=False)
    assert len(sweep(digits_300, _space({"optim.lr": [0.01]}), out, show_progress=False).table) == 1


@pytest.mark.parametrize("params, message", [
    ({"optim.lrr": [0.1]}, r"params: unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"),
    ({"model.conv.filter": [[8]]}, r"did you mean 'model.conv.filters'\?"),
    ({"optim.lr": {"type": "float", "low": 0.1, "hihg": 1}}, r"unknown field 'hihg'; did you mean 'high'\?"),
    ({"optim.name": ["adamw", "sgdd"]}, r"param 'optim.name': .*'sgdd' .*did you mean 'sgd'\?"),
    ({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
     r"a grid search needs `choices`, or a `step`"),
    ({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": "no"}}, r"log must be true or false, got 'no'"),
    ({"train.batch_size": {"type": "int", "low": 8, "high": 16, "step": 0.5}},
     r"an int range needs whole numbers for low, high and step, got 8, 16, 0.5"),
])
def test_bad_search_spaces_fail_before_any_trial_naming_the_problem(params: dict, message: str) -> None:
    with pytest.raises(DatakitError, match=message):
        load_space(_space(params))


def test_a_bad_pruner_field_or_a_key_both_searched_and_fixed_is_one_clear_error() -> None:
    with pytest.raises(DatakitError, match=r"pruner: startup_trials must be a whole number >= 0, got 'abc'"):
        load_space({**_space({"optim.lr": [0.01]}), "pruner": {"name": "median", "startup_trials": "abc"}})
    with pytest.raises(DatakitError, match=r"optim.lr is searched \(params\), so --set lr=... would be ignored"):
        load_space(_space({"optim.lr": [0.01, 0.02]}), overrides={"lr": 0.5})


def test_space_file_fields_are_checked_and_ranges_expand_for_a_grid(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("sampler: tpe\nmetrc: val_accuracy\nparams: {lr: [0.1]}\n")
    with pytest.raises(DatakitError, match=r"space.yaml: unknown field 'metrc'; did you mean 'metric'\?"):
        load_space(path)
    (tmp_path / "base.yaml").write_text("optim: {lr: 0.5}\ntrain: {epochs: 7}\n")
    path.write_text("sampler: grid\nconfig: base.yaml\nparams:\n"
                    "  batch_size: {type: int, low: 16, high: 64, step: 16}\n  lr: [0.1, 0.2]\n")
    space = load_space(path)
    assert space.keys == ["train.batch_size", "optim.lr"]  # aliases become dotted keys
    assert space.grid() == {"train.batch_size": [16, 32, 48, 64], "optim.lr": [0.1, 0.2]}
    assert space.target_trials() == 8
    assert space.base_config.train.epochs == 7  # the base config is read relative to the space file


def test_cli_sweep_prints_a_leaderboard_and_fails_cleanly_on_a_bad_key(digits_300: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space({"optim.lr": [0.01], "train.batch_size": [16, 32],
                                            "model.conv.filters": [[8, 16]]})))
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(digits_300), "--space", str(space), "-o", str(tmp_path / "s"), "-q",
                                 "--set", "train.epochs=1"], terminal_width=80)
    assert result.exit_code == 0, result.output
    # the leaderboard fits 80 columns; lines naming a path are never cut (the terminal wraps them)
    paths = ("wrote ", "best: ")
    assert max(len(line) for line in result.stdout.splitlines() if not line.startswith(paths)) <= 80
    assert f"wrote {tmp_path / 's'}/: results.csv" in result.stdout
    printed = " ".join(result.stdout.split())  # rich wraps lines to the terminal width
    assert "top 2 of 2 trials by val_accuracy" in printed and "chosen on validation only" in printed
    # the tie-break is stated and shown: a column of validation losses beside the accuracies
    assert "ties on val_accuracy go to the lower val_loss, then to the earlier trial" in printed
    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["#", "trial"])
    assert header.split()[:6] == ["#", "trial", "acc", "loss", "acc", "ep"]
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    assert table["epochs"].tolist() == [1, 1] and sorted(table["train.batch_size"]) == [16, 32]
    # best.json holds each value with the type the trial used, as a config file would
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert best["params"]["train.batch_size"] in (16, 32) and type(best["params"]["train.batch_size"]) is int
    assert type(best["params"]["optim.lr"]) is float and best["params"]["model.conv.filters"] == [8, 16]
    assert best["tie_break"] == "ties on val_accuracy go to the lower val_loss, then to the earlier trial"
    # the sweep plot: metric per trial, then one panel per searched key
    from PIL import Image

    with Image.open(tmp_path / "s" / "sweep.png") as image:
        assert image.format == "PNG" and image.width > 800 and image.height > 300
    assert "sweep.png" in printed

    space.write_text(yaml.safe_dump(_space({"optim.lrr": [0.01]})))
    bad = runner.invoke(app, ["sweep", str(digits_300), "--space", str(space), "-o", str(tmp_path / "t")])
    assert bad.exit_code == 2
    assert "did you mean 'optim.lr'?" in bad.stderr and not (tmp_path / "t").exists()


def test_two_processes_share_one_sqlite_study(digits_300: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(_space(
        {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}, sampler="random", trials=6)))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen([sys.executable, "-m", "datakit", "sweep", str(digits_300), "--space", str(space),
                          "-o", str(tmp_path / f"worker{i}"), "--storage", storage, "--study-name", "shared",
                          "-q", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_, stderr) in zip(workers, outputs):
        assert w.returncode == 0, stderr
    ran = [json.loads(stdout)["trials_run_by_this_process"] for stdout, _ in outputs]
    assert all(n >= 1 for n in ran), ran  # both processes did part of the work
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    # 6 trials in all (one more at most, when both start their last trial at the same moment)
    assert 6 <= len(trials) <= 7 and sum(ran) == len(trials)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["optim.lr"] for t in trials}) == len(trials)  # no configuration drawn twice
    workers_seen = {t.user_attrs["worker"] for t in trials}
    assert len(workers_seen) == 2
    # the process that finished last wrote a results.csv listing every trial
    last = max((pd.read_csv(tmp_path / f"worker{i}" / "results.csv") for i in range(2)), key=len)
    assert sorted(last["trial"]) == sorted(t.number for t in trials)


def test_ties_on_the_metric_go_to_the_other_validation_metric_then_the_earlier_trial() -> None:
    from datakit.sweeping import rank

    table = pd.DataFrame({"trial": [0, 1, 2, 3], "state": ["complete"] * 3 + ["pruned"],
                          "value": [0.9, 0.9, 0.8, 0.95], "val_accuracy": [0.9, 0.9, 0.8, 0.95],
                          "val_loss": [0.5, 0.3, 0.2, 0.1]})
    assert rank(table, "val_accuracy")["trial"].tolist() == [1, 0, 2]  # pruned trials are not ranked
    by_loss = table.assign(value=[0.3, 0.3, 0.5, 0.1], val_loss=[0.3, 0.3, 0.5, 0.1], val_accuracy=[0.8, 0.9, 0.9, 1])
    assert rank(by_loss, "val_loss")["trial"].tolist() == [1, 0, 2]
    same = table.assign(val_loss=0.5)
    assert rank(same, "val_accuracy")["trial"].tolist() == [0, 1, 2]


def test_only_a_process_this_host_can_see_is_judged_by_its_pid() -> None:
    from datakit.sweep_storage import _alive, _checkable_here, owner

    me = owner()
    assert _checkable_here(me) and _alive(me["pid"], me["started"])
    # another container with the same host name, or another machine: left to the heartbeat
    assert not _checkable_here({**me, "pid_namespace": "pid:[1]"}) and not _checkable_here({**me, "host": "x"})
    # a pid now used by a process started at another moment is not the trial's process
    if me["started"] is not None:  # Linux: /proc gives each process's start time
        assert not _alive(me["pid"], str(int(me["started"]) + 1))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not _alive(child.pid, None)  # gone (and reaped)


@pytest.mark.parametrize(("task", "metric", "fixed"), [
    ("segment", "val_miou", {"image_size": 32, "model.conv.filters": [8, 16]}),
    ("instance", "val_mask_map50", {"image_size": 32, "model.conv.filters": [8, 16]}),
])
def test_segmentation_tasks_sweep_on_their_own_metric(task: str, metric: str, fixed: dict, tmp_path: Path) -> None:
    """A sweep ranks segment and instance trials by their validation metric, like any task's."""
    import datakit

    datakit.sample("shapes", tmp_path / "data", count=30, size=48, objects=(1, 2), seed=2, show_progress=False)
    manifest = tmp_path / "m"
    datakit.ingest(tmp_path / "data", manifest, format="masks" if task == "segment" else "coco", workers=1,
                   show_progress=False)
    space = {"sampler": "grid", "pruner": "none", "metric": metric,
             "set": {"task": task, "epochs": 1, "batch_size": 8, "train.threads": 1, "device": "cpu", **fixed},
             "params": {"optim.lr": [0.003, 0.01]}}
    result = sweep(manifest, space, tmp_path / "sweep", show_progress=False)
    table = result.table
    assert len(table) == 2 and (table["state"] == "complete").all()
    assert table["value"].between(0, 1).all()
    best = json.loads((tmp_path / "sweep" / "best.json").read_text())
    assert best["metric"] == metric and best["value"] == table["value"].max()
    info = json.loads((Path(best["run_dir"]) / "run.json").read_text())
    assert info["task"] == {"segment": "semantic_segmentation", "instance": "instance_segmentation"}[task]


def test_the_sweep_plot_of_a_sweep_stopped_before_any_trial_finished_is_drawn(tmp_path: Path) -> None:
    """Ctrl-C in the first trial: results are written with the plot, and a log-scaled key has no
    point to place (matplotlib refused a log axis without positive data)."""
    from datakit.plots import sweep_plot

    table = pd.DataFrame({"trial": [0], "state": ["running"], "val_accuracy": [float("nan")], "optim.lr": [0.002]})
    path = sweep_plot(table, "val_accuracy", ["optim.lr"], tmp_path / "sweep.png", log_params=["optim.lr"])
    assert path.is_file() and path.stat().st_size > 0


# the defaults as trial 0


def _defaults_space(params: dict, **fields: object) -> dict:
    # the batch size is left to derive, the learning rate to the config's default
    shared = {k: v for k, v in FAST.items() if k not in ("train.batch_size", "optim.lr")}
    return {"sampler": "tpe", "pruner": "none", "set": shared, "params": params, **fields}


def test_trial_0_runs_what_train_would_choose_with_the_same_config(digits_300: Path, tmp_path: Path) -> None:
    import datakit
    from datakit.sweep_baseline import ORIGIN

    space = _defaults_space({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                             "train.batch_size": [8, 16, 32, 64]}, trials=2)
    result = sweep(digits_300, space, tmp_path / "sweep", show_progress=False)
    shared = _defaults_space({})["set"]
    plain = datakit.train(digits_300, output=tmp_path / "plain", show_progress=False, **shared)
    derived = {d["key"]: d["value"] for d in plain.derived}
    assert "train.batch_size" in derived  # the sweep's trial 0 must take a derived value, not a set one

    rows = result.table.set_index("trial")
    assert rows.loc[0, "origin"] == ORIGIN and pd.isna(rows.loc[1, "origin"])
    assert rows.loc[0, "train.batch_size"] == derived["train.batch_size"]
    assert rows.loc[0, "optim.lr"] == pytest.approx(1e-3)  # the config default: nothing derives a learning rate
    trial_config = yaml.safe_load((Path(rows.loc[0, "run_dir"]) / "config.yaml").read_text())
    plain_config = yaml.safe_load((tmp_path / "plain" / "config.yaml").read_text())
    for section, key in (("train", "batch_size"), ("train", "epochs"), ("optim", "lr"), ("model", "conv")):
        assert trial_config[section][key] == plain_config[section][key], (section, key)
    saved = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert saved.loc[saved["trial"] == 0, "origin"].tolist() == [ORIGIN]
    from rich.console import Console

    from datakit.render_sweep import leaderboard

    console = Console(record=True, width=120)
    leaderboard(console, result)
    shown = console.export_text()
    assert "*: the defaults" in shown and ("0*" in shown)
    assert ("the best trial runs the defaults" in shown) == (result.best["trial"] == 0)

    # resuming with a larger budget queues no second trial of the defaults
    more = sweep(digits_300, {**space, "trials": 3}, tmp_path / "sweep", show_progress=False)
    assert more.table["origin"].fillna("").tolist() == [ORIGIN, "", ""]


def test_defaults_outside_the_space_are_drawn_and_said(digits_300: Path, tmp_path: Path) -> None:
    from datakit.sweep_baseline import baseline
    from datakit.manifest import load_manifest

    space = load_space(_defaults_space({"optim.lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True},
                                        "train.batch_size": {"type": "int", "low": 8, "high": 64, "step": 8}}))
    queued = baseline(space, load_manifest(digits_300), "classification")
    assert set(queued.params) == {"train.batch_size"} and queued.outside == {"optim.lr": 1e-3}
    assert "outside the space, so drawn instead: optim.lr=0.001" in queued.note()

    nothing = load_space(_defaults_space({"optim.lr": [0.01, 0.02]}))
    note = baseline(nothing, load_manifest(digits_300), "classification").note()
    assert note.startswith("no trial of the defaults")


@pytest.mark.parametrize("fields", [{"baseline": False, "sampler": "random"}, {"sampler": "grid"}])
def test_no_trial_of_the_defaults_when_turned_off_or_on_a_grid(digits_300: Path, tmp_path: Path,
                                                                fields: dict) -> None:
    space = _defaults_space({"optim.lr": [0.001, 0.01]}, trials=1, **fields)
    result = sweep(digits_300, space, tmp_path / "sweep", show_progress=False)
    assert result.table["origin"].isna().all()


def test_baseline_must_be_a_boolean() -> None:
    with pytest.raises(DatakitError, match="baseline must be true or false"):
        load_space(_defaults_space({"optim.lr": [0.001]}, baseline="yes"))


@pytest.mark.parametrize(("key", "spec", "value", "inside"), [
    ("optim.lr", {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}, 1e-3, True),
    ("optim.lr", {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}, 0.5, False),
    ("train.label_smoothing", {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}, 0.2, True),
    ("train.label_smoothing", {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}, 0.15, False),
    ("train.batch_size", {"type": "int", "low": 8, "high": 64, "step": 8}, 32, True),
    ("train.batch_size", {"type": "int", "low": 8, "high": 64, "step": 8}, 12, False),
    ("model.conv.filters", {"choices": [[16, 32], [32, 64]]}, [16, 32], True),
    ("data.workers", {"choices": [0, 1]}, False, False),  # a bool is no int here
    ("augment", {"choices": ["light", "light:fixed"]}, "medium", False),
])
def test_a_default_is_inside_a_param_only_where_the_sampler_could_draw_it(key: str, spec: dict, value: object,
                                                                           inside: bool) -> None:
    from datakit import config as cfg
    from datakit.sweep_baseline import stored_form
    from datakit.sweep_space import _parse_param

    param = _parse_param(key, spec, cfg.TrainConfig(), "")
    assert stored_form(param, value)[0] is inside


def test_a_folder_holding_only_the_study_database_resumes(digits_300: Path, tmp_path: Path) -> None:
    """A sweep stopped before it wrote sweep.json (or a second process starting it at the same
    moment) left sweep.db alone; the re-run said the folder 'holds no sweep' and refused it."""
    out = tmp_path / "sweep"
    first = sweep(digits_300, _space({"optim.lr": [0.01]}), out, show_progress=False)
    for entry in out.iterdir():  # as an interrupted start leaves it: the database, nothing else
        if entry.name != "sweep.db":
            import shutil

            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    again = sweep(digits_300, _space({"optim.lr": [0.01]}), out, show_progress=False)
    assert len(again.table) == len(first.table) == 1
    (out / "notes.txt").write_text("mine")
    (out / "sweep.json").unlink()
    with pytest.raises(DatakitError, match="holds no sweep"):
        sweep(digits_300, _space({"optim.lr": [0.01]}), out, show_progress=False)
