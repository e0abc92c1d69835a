"""Contract over the whole task registry: names and aliases, the `auto` rule, and for every
implemented task one tiny epoch on a shipped sample manifest, resume, and its metric names in
metrics.csv, run.json and the eval JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.tasks import ALIASES, TASKS, canonical_task, check_monitor, get_task, resolve_task

ROOT = Path(__file__).resolve().parent.parent
# the shipped manifest each implemented task trains on (later task issues add theirs)
SAMPLES = {"classification": ROOT / "sample_manifests" / "digits-mini" / "manifest",
           "localization": ROOT / "sample_manifests" / "shapes-one" / "manifest",
           "detection": ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest",
           "instance_segmentation": ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest",
           # class maps rasterized from the objects' RLE masks
           "semantic_segmentation": ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest"}
TINY = {"epochs": 1, "batch_size": 32, "image_size": 16, "model.conv.filters": [8], "model.head.dense": [],
        "train.threads": 1, "device": "cpu", "data.val_fraction": 0.2, "data.test_fraction": 0.2}


@pytest.mark.parametrize("name", list(TASKS))
def test_names_aliases_and_metrics(name: str) -> None:
    spec = TASKS[name]
    assert canonical_task(name) == name and canonical_task(spec.alias) == name and ALIASES[spec.alias] == name
    assert spec.metrics and all(m == m.lower() and " " not in m for m in spec.metrics)
    assert spec.default_monitor == f"val_{spec.metrics[0]}" and "val_loss" in spec.monitors()
    check_monitor(name, spec.default_monitor)
    with pytest.raises(DatakitError, match="is not a metric of task"):
        check_monitor(name, "val_nonsense")
    if spec.module is None:
        with pytest.raises(DatakitError, match=f"task '{name}' is not implemented yet"):
            get_task(name)
    else:
        task_class = get_task(spec.alias)
        assert task_class.name == name and tuple(task_class.metrics) == spec.metrics


def test_unknown_task_names_the_closest() -> None:
    with pytest.raises(DatakitError, match=r"unknown task 'detction'; did you mean 'detection'\?"):
        canonical_task("detction")


def test_auto_rule() -> None:
    digits = load_manifest(SAMPLES["classification"])
    assert resolve_task("auto", digits)[0] == "classification"
    objects = load_manifest(ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest")
    name, why = resolve_task("auto", objects)
    assert name == "detection" and "instance is possible" in why
    boxes_only = load_manifest(ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest")
    boxes_only.annotations["segmentation_kind"] = pd.NA
    name, why = resolve_task("auto", boxes_only)
    assert name == "detection" and "instance" not in why
    semantic = load_manifest(SAMPLES["classification"])
    semantic.images["label"] = pd.NA
    semantic.images["semantic_mask"] = "masks/x.png"
    assert resolve_task("auto", semantic)[0] == "semantic_segmentation"
    assert resolve_task("localize", objects) == ("localization", "set in the config")
    assert resolve_task("localize", objects, "in cfg.yaml") == ("localization", "set in cfg.yaml")


@pytest.mark.parametrize("name", [n for n, s in TASKS.items() if s.module])
def test_one_tiny_epoch_resume_and_metric_keys(name: str, tmp_path: Path) -> None:
    from datakit.evaluation import evaluate
    from datakit.training import train

    sample = SAMPLES[name]
    # a copy: the sample's image root is relative to it
    shutil.copytree(sample.parent, tmp_path / "sample")
    manifest = tmp_path / "sample" / sample.name
    metrics = TASKS[name].metrics
    result = train(manifest, None, tmp_path / "run", show_progress=False, task=name, **TINY)
    assert result.task == name and result.epochs_run == 1
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    for m in metrics:
        assert f"train_{m}" in table.columns and f"val_{m}" in table.columns
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["task"] == name and info["metrics"] == list(metrics) and set(metrics) <= set(info["test_metrics"])
    resumed = train(manifest, None, tmp_path / "run", resume=True, show_progress=False, epochs=2)
    assert resumed.epochs_run == 2 and len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2
    scored = evaluate(tmp_path / "run", split="test", show_progress=False)
    assert scored["task"] == name and all(isinstance(scored[m], float) for m in metrics)
