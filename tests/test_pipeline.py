"""Pipelines: steps chained through their results, checked before running, failures named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datakit import config as cfg
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.pipeline import STEPS, StepFailed, load_pipeline, run_pipeline
from datakit.sweep_space import load_space
from tests.conftest import REPO, TINY_TRAIN

SHIPPED = sorted((REPO / "pipelines").glob("*.yaml"))


def test_steps_chain_through_their_results_and_the_run_is_recorded(tmp_path: Path) -> None:
    pipeline = {
        "name": "chain",
        "seed": 3,
        "steps": [
            {"sample": {"name": "shapes", "count": 40, "size": 24, "objects": [1, 1]}},
            {"ingest": {}},  # src: the images the sample step made
            {"info": {}},
            {"split": {"val": 0.2, "test": 0.2}},
            {"train": {"manifest": "${split.manifest}", "epochs": 1, **TINY_TRAIN}},
            {"eval": {"run": "${train.run}", "split": "test"}},
        ],
    }
    result = run_pipeline(pipeline, tmp_path / "out", show_progress=False)

    out = (tmp_path / "out").resolve()
    assert result.status == "completed" and [s.status for s in result.steps] == ["completed"] * 6
    assert result.results("sample")["images"] == str(out / "sample" / "images")
    assert result.results("ingest")["manifest"] == str(out / "ingest") and result.results("ingest")["count"] == 40
    split_manifest = load_manifest(result.results("split")["manifest"])
    assert split_manifest.images["split"].value_counts().to_dict() == {"train": 24, "val": 8, "test": 8}
    train = result.results("train")
    assert train["run"] == str(out / "train")
    run_info = json.loads((out / "train" / "run.json").read_text())
    assert run_info["manifest"] == str(out / "split") and run_info["split_source"] == "manifest"
    assert cfg.resolve_config(out / "train" / "config.yaml").seed == 3  # the pipeline's seed reached training
    evaluation = result.results("eval")
    assert evaluation["images"] == 8 and 0 <= evaluation["accuracy"] <= 1
    assert Path(evaluation["metrics"]).is_file()

    written = yaml.safe_load((out / "pipeline.yaml").read_text())
    assert written["seed"] == 3 and [next(iter(s)) for s in written["steps"]][-1] == "eval"
    record = json.loads((out / "pipeline.json").read_text())
    assert record["status"] == "completed" and record["seed"] == 3
    assert record["steps"][4]["options"]["manifest"] == str(out / "split")  # references resolved
    assert all(step["seconds"] > 0 for step in record["steps"])
    from datakit.pipeline import _step_results

    for step in result.steps:  # what load_pipeline checks references against is what the steps give
        assert set(step.results) <= set(_step_results(step.step)), step.step


def test_a_config_file_that_sets_its_seed_keeps_it_in_a_pipeline(digits_small: Path, tmp_path: Path) -> None:
    """The pipeline's seed replaced the seed of the step's config file: the same file trained
    differently through `datakit run` and `datakit train -c`."""
    (tmp_path / "seeded.yaml").write_text(yaml.safe_dump({**{"seed": 5}, "train": {"epochs": 1}}))
    steps = {"steps": [{"train": {"manifest": str(digits_small), "config": "seeded.yaml", **TINY_TRAIN,
                                  "epochs": 1}}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(steps))
    run_pipeline(tmp_path / "p.yaml", tmp_path / "out", seed=3, show_progress=False)
    assert cfg.resolve_config(tmp_path / "out" / "train" / "config.yaml").seed == 5


def test_a_failing_step_stops_the_pipeline_and_is_named(tmp_path: Path) -> None:
    pipeline = {"name": "broken", "steps": [
        {"sample": {"name": "shapes", "count": 8, "size": 24}},
        {"ingest": {"src": str(tmp_path / "missing")}},
        {"info": {}},
    ]}
    with pytest.raises(StepFailed, match=r"pipeline 'broken' stopped at step 2/3 'ingest': .*missing") as caught:
        run_pipeline(pipeline, tmp_path / "out", show_progress=False)
    assert caught.value.exit_code == 2
    record = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert [s["status"] for s in record["steps"]] == ["completed", "failed", "pending"]
    assert record["status"] == "failed" and "missing" in record["steps"][1]["error"]


@pytest.mark.parametrize("steps, message", [
    ([{"augmnt": {}}], r"step 1: unknown step 'augmnt'; did you mean 'augment'\? known: sample, ingest, info, "
                       r"split, augment, train, eval, sweep"),
    ([{"report": {}}], r"unknown step 'report'; known: "),
    ([{"trian": {}}], r"unknown step 'trian'; did you mean 'train'\? known: sample, "),
    ([{"sample": {"nmae": "digits"}}], r"step 1 'sample': step 'sample' has no option 'nmae'; did you mean 'name'\?"),
    ([{"sample": {"name": "digits"}}, {"train": {"optim.lrr": 0.1}}],
     r"step 2 'train': unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"),
    ([{"sample": {"name": "digits"}}, {"ingest": {"src": "${trian.images}"}}],
     r"step 2 'ingest': \$\{trian.images\} does not name an earlier step; earlier steps: sample"),
    ([{"eval": {"run": "${train.run}"}}, {"train": {}}], r"does not name an earlier step \(it runs later\)"),
    ([{"sweep": {}}], r"step 'sweep' needs 'space'"),
    ([{"train": {}}, {"train": {}}], r"step id\(s\) train used twice; give repeated steps `id: NAME`"),
    ([{"sample": {"name": "shapes"}}, {"ingest": {}}, {"train": {}}, {"eval": {"split": "bogus"}}],
     r"step 4 'eval': step 'eval': split 'bogus' is not one of train, val, test, all"),
    ([{"sample": {"name": "digitz"}}], r"name 'digitz' is not one of shapes, digits; did you mean 'digits'\?"),
    ([{"sample": {"name": "digits"}}, {"ingest": {"on_invalid": "drop"}}], r"on_invalid 'drop' is not one of clip"),
    ([{"sample": {"name": "digits"}}, {"ingest": {}}, {"train": {}}, {"eval": {"run": "${train.rn}"}}],
     r"step 4 'eval': \$\{train.rn\}: step 'train' gives no result 'rn'; did you mean 'run'\?"),
    ([{"sample": {"name": "digits", "output": "../elsewhere"}}],
     r"output '../elsewhere' leaves the pipeline's output folder"),
    ([{"sample": {"name": "digits"}}, {"ingest": {}}, {"train": {"optim.lr": -1}}],
     r"step 3 'train': config key 'optim.lr' must be > 0"),
])
def test_bad_pipelines_fail_before_any_step_runs(steps: list, message: str, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match=message):
        run_pipeline({"steps": steps}, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_set_changes_one_step_option_and_names_a_wrong_step() -> None:
    steps = {"steps": [{"sample": {"name": "digits"}}, {"id": "fit", "train": {"epochs": 5}}]}
    pipeline = load_pipeline(steps, {"fit.epochs": 2, "fit.optim.lr": 0.5, "seed": 7})
    assert pipeline.steps[1].options == {"epochs": 2, "optim.lr": 0.5} and pipeline.seed == 7
    with pytest.raises(DatakitError, match=r"--set trian.epochs: expected STEP.OPTION with STEP one of sample, fit"):
        load_pipeline(steps, {"trian.epochs": 2})


def test_cli_run_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    path = tmp_path / "p.yaml"
    path.write_text("name: tiny\nsteps:\n  - sample: {name: shapes, count: 8, size: 24}\n  - ingest: {}\n  - info: {}\n")
    runner = CliRunner()
    args = ["run", str(path), "-o", str(tmp_path / "out"), "-q"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "pipeline 'tiny' done" in first.stdout
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "pass --overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite", "--set", "sample.count=12"]).exit_code == 0
    assert json.loads((tmp_path / "out" / "pipeline.json").read_text())["steps"][1]["results"]["count"] == 12
    bad = runner.invoke(app, ["run", str(path), "-o", str(tmp_path / "other"), "--set", "ingest.srcc=x"])
    assert bad.exit_code == 2 and "has no option 'srcc'; did you mean 'src'?" in bad.stderr


def test_registry_steps_all_take_a_context_and_return_results() -> None:
    import inspect

    for name, step in STEPS.items():
        first = next(iter(inspect.signature(step).parameters))
        assert first == "ctx", name
        assert step.__doc__, f"step {name} needs a docstring (it is the step's help)"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_pipelines_and_the_files_they_name_are_valid(path: Path) -> None:
    pipeline = load_pipeline(path)
    assert pipeline.name == path.stem
    for step in pipeline.steps:
        if step.name == "train" and isinstance(step.options.get("config"), str):
            cfg.resolve_config(pipeline.base / step.options["config"])
        if step.name == "sweep":
            load_space(pipeline.base / step.options["space"])
    assert {"digits-cnn.yaml", "digits-sweep.yaml", "shapes-classify.yaml", "demo.yaml"} <= {p.name for p in SHIPPED}


@pytest.mark.slow
def test_the_demo_runs_its_pipeline_end_to_end(tmp_path: Path) -> None:
    from datakit.demo import run_demo

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "shapes").mkdir()  # what the demo wrote before it ran a pipeline: replaced
    result = run_demo(tmp_path / "demo", show_progress=False)
    assert result.status == "completed" and [s.id for s in result.steps][-1] == "eval"
    assert result.results("eval")["accuracy"] > 0.9
    assert (tmp_path / "demo" / "pipeline.yaml").is_file()


def test_cli_run_never_cuts_a_path_and_titles_wrap_only_between_words(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datakit.cli import app

    deep = tmp_path / "a-rather-long-folder-name-for-testing" / "another-long-nested-folder-name" / "outputs"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({"name": "paths", "steps": [
        {"sample": {"name": "shapes", "count": 8, "size": 24, "objects": [1, 1]}}, {"ingest": {}}, {"info": {}}]}))
    result = CliRunner().invoke(app, ["run", str(pipeline), "-o", str(deep), "-q"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert len(str(deep)) > 80 and "…" not in result.stdout
    lines = result.stdout.splitlines()
    assert f"outputs in {deep}/" in lines  # whole, on one line that the terminal wraps
    assert any(line.startswith("wrote ") and str(deep / "ingest") in line for line in lines)
    # a title that fits the terminal stays on one line, even over a narrow table
    assert any(line.strip() == "usable images per label and split" for line in lines)


def test_augment_step_sits_between_split_and_train(tmp_path: Path) -> None:
    pipeline = {
        "name": "augmented",
        "seed": 2,
        "steps": [
            {"sample": {"name": "shapes", "count": 20, "size": 24, "objects": [1, 1]}},
            {"ingest": {}},
            {"split": {"val": 0.2, "test": 0.2}},
            {"augment": {"preset": "light", "copies": 2, "verify": True}},  # manifest: the split one
            {"train": {"epochs": 1, **TINY_TRAIN}},  # manifest: the augmented one
        ],
    }
    result = run_pipeline(pipeline, tmp_path / "out", show_progress=False)
    out = (tmp_path / "out").resolve()
    augmented = result.results("augment")
    train_count = result.results("split")["splits"]["train"]
    assert augmented["manifest"] == str(out / "augment") and augmented["split"] == "train"
    assert augmented["derived"] == 2 * train_count and augmented["carried"] == 20
    assert augmented["verified"] == augmented["derived"]
    m = load_manifest(out / "augment")
    derived = m.images[m.images["parent_id"].notna()]
    assert len(derived) == 2 * train_count and set(derived["split"]) == {"train"}
    assert (derived["seed"].notna() & derived["pipeline"].notna()).all()
    assert json.loads((out / "train" / "run.json").read_text())["manifest"] == str(out / "augment")
    assert json.loads((out / "augment" / "augment.json").read_text())["seed"] == 2  # the pipeline's seed
    from datakit.pipeline import _step_results

    assert set(augmented) <= set(_step_results("augment"))


def test_augment_step_takes_the_short_form_inline_and_says_when_there_is_no_split(tmp_path: Path) -> None:
    steps = [{"sample": {"name": "shapes", "count": 8, "size": 24, "objects": [1, 1]}}, {"ingest": {}},
             {"augment": {"spec": [{"HorizontalFlip": {"p": 1.0}}]}}]
    with pytest.raises(StepFailed, match="step 3/3 'augment'.*no splits.*--split all"):
        run_pipeline({"name": "nosplit", "steps": steps}, tmp_path / "a", show_progress=False)
    steps[2]["augment"]["split"] = "all"
    result = run_pipeline({"name": "all", "steps": steps}, tmp_path / "b", show_progress=False)
    assert result.results("augment")["derived"] == 8 and result.results("augment")["source"] == "list"
    with pytest.raises(DatakitError, match="step 'augment' has no option 'copy'; did you mean 'copies'"):
        load_pipeline({"name": "typo", "steps": [{"augment": {"copy": 2}}]})


@pytest.mark.parametrize(("options", "message"), [
    ({"split": "trian"}, "split 'trian' is not one of"),
    ({"preset": "mediun"}, "unknown preset 'mediun'; did you mean 'medium'"),
    ({"preset": "light:flipped"}, "unknown orientation 'flipped'"),
    ({"split": "all", "copies": "2"}, "copies must be a whole number, got '2'"),
    ({"split": "all", "seed": "abc"}, "seed must be a whole number, got 'abc'"),
])
def test_augment_step_options_are_checked_before_the_first_step(tmp_path: Path, options: dict, message: str) -> None:
    """These failed only after sample and ingest had run (or, for seed, not at all)."""
    pipeline = {"name": "p", "steps": [{"sample": {"name": "shapes", "count": 8}}, {"ingest": {}}, {"augment": options}]}
    with pytest.raises(DatakitError, match=message):
        run_pipeline(pipeline, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()
