"""Data-aware defaults (datakit.engine.defaults): the derivation on synthetic manifests, and the
rule that a key the user set is never changed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from datakit import config as cfg
from datakit.engine import defaults
from datakit.engine.defaults import DataStats, data_stats, derive
from datakit.manifest import IMAGE_COLUMNS, Manifest, categories_from_names


def synthetic_manifest(counts: dict[str, int], sides: list[tuple[int, int]] | tuple[int, int] = (64, 64),
                       channels: int = 3, split: bool = False, seed: int = 0) -> Manifest:
    """A manifest table (no files needed: the derivation reads statistics only)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in counts.items():
        for i in range(n):
            w, h = sides if isinstance(sides, tuple) else sides[int(rng.integers(len(sides)))]
            rows.append({"id": f"{label}-{i}", "path": f"{label}/{i}.png", "width": w, "height": h,
                         "channels": channels, "label": label, "status": "ok", "file_size": w * h,
                         "split": ("train" if i % 10 < 7 else "val" if i % 10 < 9 else "test") if split else None})
    images = pd.DataFrame(rows)
    for column, dtype in IMAGE_COLUMNS.items():
        if column not in images:
            images[column] = pd.Series([None] * len(images), dtype="object")
        images[column] = images[column].astype(dtype)
    return Manifest(images=images, categories=categories_from_names(counts), tasks=["classification"])


def derived(manifest: Manifest, config: cfg.TrainConfig | None = None) -> dict[str, object]:
    config = config or cfg.resolve_config()
    result = derive(data_stats(manifest, config), config, cfg.user_set_keys(config))
    return {d.key: d.value for d in result.derived}


def steps(values: dict[str, object], train_images: int) -> int:
    return int(values["train.epochs"]) * math.ceil(train_images / int(values["train.batch_size"]))


def test_small_two_class_set_gets_many_steps_and_late_early_stopping() -> None:
    # the case: 200 real images, 2 classes; 20 epochs of batch 64 were ~40 steps
    values = derived(synthetic_manifest({"a": 100, "b": 100}, sides=(120, 90)))
    train = round(200 * 0.7)
    assert values["train.batch_size"] == 8
    assert steps(values, train) >= defaults.MIN_STEPS
    # early stopping cannot fire before 30% of the budget
    assert values["train.patience"] * math.ceil(train / 8) >= 0.3 * steps(values, train)
    assert 1 <= values["schedule.warmup_epochs"] <= values["train.epochs"] // 10
    assert values["data.image_size"] == 104  # sqrt(120*90) ~ 104
    assert values["augment"] == "light:fixed"


def test_patience_says_when_its_minimum_outweighs_the_share_of_a_short_run() -> None:
    manifest = synthetic_manifest({"a": 600, "b": 600}, sides=(16, 16))
    short = cfg.resolve_config(None, {"epochs": 3})
    reasons = {d.key: d.reason for d in derive(data_stats(manifest, short), short, {"train.epochs"}).derived}
    assert "(at least 5 epochs; 30% of the" in reasons["train.patience"]
    config = cfg.resolve_config()
    reasons = {d.key: d.reason for d in derive(data_stats(manifest, config), config, set()).derived}
    assert "(30% of the " in reasons["train.patience"] and " steps; " in reasons["train.patience"]


def test_tiny_images_are_upscaled_and_the_cnn_fits_them() -> None:
    values = derived(synthetic_manifest({str(d): 180 for d in range(10)}, sides=(8, 8), channels=1))
    assert values["data.image_size"] == 16
    assert values["model.conv.filters"] == [16, 32, 64]  # 16 -> 2 px after three blocks
    assert values["model.conv.convs_per_block"] == 2
    assert values["model.head.pooling"] == "global_avg_max"


def test_large_photos_are_capped_and_many_classes_widen_the_cnn() -> None:
    manifest = synthetic_manifest({f"c{i}": 30 for i in range(20)}, sides=[(640, 480), (800, 600), (1024, 768)])
    values = derived(manifest)
    assert values["data.image_size"] == defaults.MAX_SIDE
    assert values["model.conv.filters"] == [32, 64, 128, 256, 256]
    assert "model.conv.convs_per_block" not in values


def test_input_size_reason_names_the_measure_it_prints() -> None:
    # 2000x1500 photos: 1732 px is sqrt(w*h), neither side; "median image side 1732 px" misled
    manifest = synthetic_manifest({"a": 20, "b": 20}, sides=(2000, 1500))
    config = cfg.resolve_config()
    result = derive(data_stats(manifest, config), config, cfg.user_set_keys(config))
    why = next(d.reason for d in result.derived if d.key == "data.image_size")
    assert why.startswith("median sqrt(width x height) 1732 px (10-90%: 1732-1732)")
    assert "image side" not in why


def test_a_large_set_gets_few_passes_and_full_batches() -> None:
    values = derived(synthetic_manifest({"a": 40_000, "b": 30_000, "c": 30_000}, sides=(64, 64), split=True))
    assert values["train.batch_size"] == defaults.MAX_BATCH
    assert values["train.epochs"] == defaults.MIN_EPOCHS  # 1,094 steps per epoch: the budget is passes
    assert values["model.conv.filters"] == [16, 32, 64, 128]


def test_the_manifest_split_counts_over_the_fractions() -> None:
    manifest = synthetic_manifest({"a": 500, "b": 500}, split=True)
    stats = data_stats(manifest, cfg.resolve_config())
    assert stats.train_images == 700 and stats.images == 1000 and stats.classes == 2
    unsplit = data_stats(synthetic_manifest({"a": 500, "b": 500}), cfg.resolve_config({"data.val_fraction": 0.2}))
    assert unsplit.train_images == 650


def test_broken_and_unlabelled_rows_are_not_counted() -> None:
    manifest = synthetic_manifest({"a": 20, "b": 20}, channels=1)
    manifest.images.loc[0, "status"] = "unreadable"
    manifest.images.loc[1, "label"] = None
    stats = data_stats(manifest, cfg.resolve_config())
    assert stats.images == 38 and stats.channels == 1


SET_BY_USER = [
    {"data.image_size": 48},
    {"train.batch_size": 128},
    {"epochs": 7},
    {"train.patience": None},
    {"schedule.warmup_epochs": 0},
    {"augment": []},
    {"model.conv.kernel_size": 5},
    {"model.name": "resnet18"},
]


@pytest.mark.parametrize("overrides", SET_BY_USER, ids=lambda o: next(iter(o)))
def test_keys_the_user_set_are_never_changed(overrides: dict[str, object]) -> None:
    from datakit.engine.defaults import derive_config

    manifest = synthetic_manifest({"a": 60, "b": 60}, sides=(8, 8))
    config = cfg.resolve_config(None, overrides)
    before = cfg.to_dict(config)
    out, derivation = derive_config(manifest, config, "classification")
    assert cfg.to_dict(config) == before  # the input is not modified
    touched = {d.key for d in derivation.derived}
    for key, value in overrides.items():
        key = cfg.resolve_key(key)
        assert key not in touched
        assert cfg.get_key(out, key) == cfg.check_value(key, value)
    if "model.conv.kernel_size" in overrides:
        assert not any(k.startswith("model.") for k in touched)  # the architecture is the user's
    if "model.name" in overrides:  # a torchvision family: only its stem follows the input size
        assert {k for k in touched if k.startswith("model.")} == {"model.stem"}
        assert cfg.get_key(out, "data.image_size") >= 32
    if "train.epochs" in {cfg.resolve_key(k) for k in overrides}:
        assert "schedule.warmup_epochs" not in touched  # a set length keeps its own schedule


def test_config_files_sweeps_and_hand_built_configs_count_as_set(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\ndata: {image_size: 32}\n")
    from_file = cfg.resolve_config(path, {"optim.lr": 0.01})
    assert {"train.epochs", "data.image_size", "optim.lr"} <= cfg.user_set_keys(from_file)
    # a sweep resolves its base config again with each trial's parameters
    trial = cfg.resolve_config(from_file, {"train.batch_size": 16})
    assert {"train.epochs", "train.batch_size"} <= cfg.user_set_keys(trial)
    by_hand = cfg.TrainConfig()
    by_hand.train.patience = 9
    assert cfg.user_set_keys(by_hand) == {"train.patience"}
    # setting a key to its default value still counts: the user chose it
    assert "train.epochs" in cfg.user_set_keys(cfg.resolve_config(None, {"epochs": 20}))


def test_shipped_configs_derive_nothing_that_changes_their_results() -> None:
    from datakit.engine.defaults import derive_config

    make = synthetic_manifest
    for name in ("digits-cnn", "shapes-classify"):
        config = cfg.resolve_config(f"configs/{name}.yaml")
        _, derivation = derive_config(make({"a": 500, "b": 500}), config, "classification")
        # only run-speed keys may be derived for a tuned config; never what it learns with
        assert {d.key for d in derivation.derived} <= {"data.workers", "train.threads"}, name


def test_applied_values_pass_validation_and_resume_derives_nothing() -> None:
    manifest = synthetic_manifest({"a": 12, "b": 9}, sides=(30, 50))
    config = cfg.resolve_config()
    result = derive(data_stats(manifest, config), config, cfg.user_set_keys(config))
    applied = result.apply(config)
    assert cfg.user_set_keys(config) == set() and result.derived
    assert applied.train.epochs == {d.key: d.value for d in result.derived}["train.epochs"]
    # a resumed run rebuilds its config from the saved one: every key is then the run's own
    reloaded = cfg.from_dict(cfg.to_dict(applied))
    again = derive(data_stats(manifest, reloaded), reloaded, cfg.user_set_keys(reloaded))
    assert again.derived == []


def box_manifest(images: int, objects_per_image: int = 2, side: int = 128) -> Manifest:
    """A detection manifest table: unlabelled images, the objects in the annotations table."""
    from datakit.manifest import ANNOTATION_COLUMNS

    base = synthetic_manifest({"img": images}, sides=(side, side))
    base.images["label"] = pd.Series([None] * images, dtype=base.images["label"].dtype)
    rows = [{"id": f"a{i}-{k}", "image_id": f"img-{i}", "category": ("circle", "star")[k % 2],
             "bbox_x": 4.0, "bbox_y": 4.0, "bbox_w": 20.0, "bbox_h": 20.0}
            for i in range(images) for k in range(objects_per_image)]
    annotations = pd.DataFrame(rows)
    for column, dtype in ANNOTATION_COLUMNS.items():
        if column not in annotations:
            annotations[column] = pd.Series([None] * len(annotations), dtype="object")
        annotations[column] = annotations[column].astype(dtype)
    return Manifest(images=base.images, annotations=annotations, categories=categories_from_names(["circle", "star"]),
                    tasks=["detection"])


def test_box_tasks_derive_length_warmup_and_batch_but_not_their_model_or_input() -> None:
    manifest = box_manifest(1000)
    config = cfg.resolve_config(None, {"task": "detection"})
    stats = data_stats(manifest, config, "detection")
    assert stats.class_counts == {"circle": 1000, "star": 1000} and stats.images == 1000  # objects, not labels
    values = {d.key: d.value for d in derive(stats, config, set(), task="detection").derived}
    assert {"train.batch_size", "train.epochs", "schedule.warmup_epochs", "train.patience"} <= set(values)
    assert not {"data.image_size", "augment", "model.stem"} & set(values)
    assert not any(k.startswith("model.") for k in values)
    assert steps(values, stats.train_images) >= defaults.MIN_STEPS
    # a family's own defaults (FCOS: warm-up 2 epochs) are the family's to set, not derived
    fcos = cfg.resolve_config(None, {"task": "detection", "model.name": "fcos_resnet50_fpn"})
    values = {d.key: d.value for d in derive(stats, fcos, cfg.user_set_keys(fcos), task="detection").derived}
    assert "schedule.warmup_epochs" not in values and "train.epochs" in values
    # the user's keys win
    user = cfg.resolve_config(None, {"task": "localization", "epochs": 7, "batch_size": 4})
    values = {d.key: d.value for d in derive(stats, user, cfg.user_set_keys(user), task="localization").derived}
    assert "train.epochs" not in values and "train.batch_size" not in values
    assert "schedule.warmup_epochs" not in values  # a set length keeps its own schedule


def test_shipped_object_configs_derive_only_run_speed_keys() -> None:
    for name, task in (("shapes-detect", "detection"), ("shapes-localize", "localization"),
                       ("shapes-segment", "semantic_segmentation"), ("shapes-instance", "instance_segmentation")):
        config = cfg.resolve_config(f"configs/{name}.yaml")
        _, derivation = defaults.derive_config(box_manifest(300), config, task)
        assert {d.key for d in derivation.derived} <= {"data.workers", "train.threads"}, name


@pytest.mark.parametrize("task", ["semantic_segmentation", "instance_segmentation"])
def test_segmentation_tasks_derive_length_and_batch_but_not_their_model_or_input(task: str) -> None:
    manifest = box_manifest(1000)
    config = cfg.resolve_config(None, {"task": task})
    stats = data_stats(manifest, config, task)
    assert stats.images == 1000 and stats.train_images == 700  # every readable image, labelled or not
    values = {d.key: d.value for d in derive(stats, config, set(), task=task).derived}
    assert {"train.batch_size", "train.epochs", "schedule.warmup_epochs", "train.patience"} <= set(values)
    assert not {"data.image_size", "augment", "model.stem", "model.conv.filters"} & set(values)
    assert steps(values, stats.train_images) >= defaults.MIN_STEPS


@pytest.mark.parametrize("task", ["detection", "localization", "instance_segmentation"])
def test_an_object_task_derives_from_the_train_count_its_split_gives(task: str, tmp_path) -> None:
    """The table said 28 training images (40 x 0.7) where the stratified split made 24: the batch,
    steps per epoch and patience came from a count the run never had."""
    import json

    from datakit import ingest
    from datakit.samples import make_shapes
    from datakit.training import train

    make_shapes(tmp_path / "shapes", count=40, size=32, objects=(1, 2), seed=2)
    ingest(tmp_path / "shapes", tmp_path / "m", show_progress=False)
    train(tmp_path / "m", output=tmp_path / "run", show_progress=False, task=task, epochs=1)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["defaults"]["stats"]["train_images"] == run["images"]["train"] == 24


def test_defaults_plan_the_split_key_training_uses_ties_and_crowds_included() -> None:
    """The defaults stratified by the last of equal-area boxes and counted crowd regions, where
    training takes the first and drops crowds: on such data their planned split was not the real one."""
    from datakit.tasks.boxdata import prepare_boxes

    manifest = box_manifest(40, objects_per_image=1)
    ann = manifest.annotations
    ann["category"] = pd.array(["circle"] * 40, dtype=ann["category"].dtype)
    twin = ann.iloc[:1].copy()  # an equal-area twin listed first: the first one is the image's key
    twin["id"], twin["category"] = "twin", "star"
    crowd = ann.iloc[1:4].copy()  # a large crowd region is not a target, so not the key
    crowd["id"] = [f"crowd-{i}" for i in range(3)]
    crowd["category"], crowd["bbox_w"], crowd["bbox_h"], crowd["iscrowd"] = "star", 90.0, 90.0, 1
    manifest.annotations = pd.concat([twin, ann, crowd], ignore_index=True).astype(ann.dtypes.to_dict())
    config = cfg.resolve_config(None, {"task": "detection"})
    stats = data_stats(manifest, config, "detection")
    made = prepare_boxes(manifest, config.data, config.seed, "detection", one_object=False)
    assert set(made.frames["train"]["label"]) | set(made.frames["val"]["label"]) == {"circle", "star"}
    assert stats.train_images == len(made.frames["train"]) == 28  # the old key planned 26
    assert stats.class_counts == {"circle": 40, "star": 1}  # the objects trained on: the crowds left out


@pytest.mark.parametrize(("side", "batch"), [(64, 16), (128, 16), (256, 16), (512, 4), (1024, 1)])
def test_an_object_task_batch_holds_at_most_a_million_input_pixels(side: int, batch: int) -> None:
    """400 training images ask for batch 16; large inputs get fewer images per batch, a memory guard."""
    config = cfg.resolve_config(None, {"task": "detection", "image_size": side})
    stats = data_stats(box_manifest(572, side=side), config, "detection")
    values = {d.key: d.value for d in derive(stats, config, {"data.image_size"}, task="detection").derived}
    assert values["train.batch_size"] == batch


# ---------------------------------------------------------------------------------------------
# saying when training is not learning


def test_a_model_that_predicts_one_class_is_reported_during_the_run_and_in_the_summary(
        digits_small, tmp_path) -> None:
    import json

    import torch
    from rich.console import Console

    from datakit.models import build_model
    from datakit.render_training import train_summary
    from datakit.training import train
    from tests.conftest import TINY_TRAIN

    settings = {**TINY_TRAIN, "optim.lr": 1e-9, "augment": [], "schedule.warmup_epochs": 0, "train.patience": None}
    config = cfg.resolve_config(None, settings)
    model = build_model(config.model, 1, 10, (8, 8))
    last = model.head[-1]
    with torch.no_grad():  # every image gets the same logits: class 0 wins
        last.weight.zero_()
        last.bias.zero_()
        last.bias[0] = 10.0
    weights = tmp_path / "one-class.pt"
    torch.save(model.state_dict(), weights)

    console = Console(record=True, width=200)
    from datakit import train_display

    live = train_display.default_console
    train_display.default_console = console  # what a person watching the run sees
    try:
        result = train(digits_small, output=tmp_path / "run", epochs=3, show_progress=True,
                       **{**settings, "model.weights": str(weights)})
    finally:
        train_display.default_console = live
    during = console.export_text()
    kinds = {w["kind"]: w for w in result.warnings}
    assert set(kinds) == {"single_class", "near_chance"}
    assert kinds["single_class"]["epochs"] == [2, 3]  # from the first epoch after warm-up
    assert "predicts one class only ('0')" in kinds["single_class"]["message"]
    assert "optim.lr" in kinds["single_class"]["message"] and "data.balance" in kinds["single_class"]["message"]
    assert "not learning (epoch 2)" in during and "validation predicts one class only" in during
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [w["kind"] for w in info["warnings"]] == [w["kind"] for w in result.warnings]
    summary = Console(record=True, width=200)
    train_summary(summary, result)
    text = summary.export_text()
    assert "not learning (2 epochs, 2-3)" in text and "training accuracy" in text


def _confusion(rows: list[list[int]]):
    import torch

    from datakit.tasks.classification import ConfusionEvaluator

    evaluator = ConfusionEvaluator(len(rows))
    evaluator.matrix = torch.tensor(rows, dtype=torch.int64).flatten()
    return evaluator


def test_memorizing_a_small_set_is_reported_with_its_causes() -> None:
    """Training fits (0.95) while validation stays at chance: the few-images case (issue 13's few20)."""
    from datakit.tasks.classification import not_learning

    config = cfg.resolve_config(None, {})
    train = _confusion([[15, 1, 0, 0], [0, 16, 0, 0], [1, 0, 15, 0], [0, 0, 1, 15]])
    val_at_chance = _confusion([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    found = not_learning(train, val_at_chance, ["a", "b", "c", "d"], config)
    assert set(found) == {"memorizing"}
    message = found["memorizing"]
    assert "training accuracy 0.953 but validation 0.250" in message and "~16 per class" in message
    assert "augment: medium" in message and "optim.weight_decay" in message
    val_learning = _confusion([[3, 1, 0, 0], [0, 4, 0, 0], [1, 0, 3, 0], [0, 0, 1, 3]])
    assert not_learning(train, val_learning, ["a", "b", "c", "d"], config) == {}


def test_a_sign_that_goes_away_is_said_to_be_gone(digits_small, tmp_path, monkeypatch) -> None:
    """An imbalanced set often predicts the big class for the first epochs, then learns: the run says
    when the sign stops holding, and the summary does not read as a failed run."""
    from rich.console import Console

    from datakit import train_display
    from datakit.render_training import train_summary
    from datakit.tasks.classification import ClassificationTask
    from datakit.training import train
    from tests.conftest import TINY_TRAIN

    calls = []

    def early_only(self, train_metrics, val_metrics, data):
        calls.append(1)
        return {"single_class": "validation predicts one class only"} if len(calls) <= 2 else {}

    monkeypatch.setattr(ClassificationTask, "diagnose", early_only)
    console = Console(record=True, width=200)
    monkeypatch.setattr(train_display, "default_console", console)
    result = train(digits_small, output=tmp_path / "run", show_progress=True,
                   **{**TINY_TRAIN, "train.epochs": 6, "schedule.warmup_epochs": 0, "train.patience": None})
    (sign,) = result.warnings
    assert sign["kind"] == "single_class" and sign["epochs"] == [2, 3] and sign["gone_from"] == 4
    during = console.export_text()
    assert "not learning (epoch 2)" in during
    assert "learning (epoch 6): the sign 'single_class' of epochs 2-3 has not held since epoch 4" in during
    summary = Console(record=True, width=200)
    train_summary(summary, result)
    assert "not learning early on (2 epochs, 2-3), gone from epoch 4" in summary.export_text()


def test_a_sign_that_comes_and_goes_is_not_called_gone(digits_small, tmp_path, monkeypatch) -> None:
    """Memorizing on a 16-image validation split flickers: two epochs without it do not clear it."""
    from datakit.tasks.classification import ClassificationTask
    from datakit.training import train
    from tests.conftest import TINY_TRAIN

    epochs = iter(range(2, 100))
    monkeypatch.setattr(ClassificationTask, "diagnose",
                        lambda self, *a: {"memorizing": "m"} if next(epochs) in (2, 5) else {})
    result = train(digits_small, output=tmp_path / "run", show_progress=False,
                   **{**TINY_TRAIN, "train.epochs": 6, "schedule.warmup_epochs": 0, "train.patience": None})
    (sign,) = result.warnings
    assert sign["epochs"] == [2, 5] and sign["gone_from"] is None


def test_a_model_that_learns_is_not_reported(digits_run) -> None:
    assert digits_run.warnings == []


# ---------------------------------------------------------------------------------------------
# threads and workers


def test_threads_and_workers_follow_the_cores_and_the_step() -> None:
    from datakit.engine.defaults import threads_and_workers

    assert threads_and_workers(2, 16, 32, augmenting=True) == (2, 0)  # no core to spare for a worker
    assert threads_and_workers(4, 16, 32, augmenting=True) == (2, 1)  # tiny steps: 2 threads (the 5x)
    assert threads_and_workers(16, 16, 32, augmenting=True) == (8, 2)  # ...but half the cores on many (measured)
    assert threads_and_workers(8, 16, 32, augmenting=True) == (4, 2)
    assert threads_and_workers(16, 64, 64, augmenting=True) == (8, 2)
    assert threads_and_workers(64, 128, 64, augmenting=True) == (8, 2)
    assert threads_and_workers(16, 128, 64, augmenting=False) == (8, 0)  # cached, nothing to augment
    assert threads_and_workers(1, 128, 64, augmenting=True) == (1, 0)
    # a torchvision family does more per pixel: threads from a smaller input on
    assert threads_and_workers(16, 16, 64, augmenting=False, model="resnet18") == (8, 0)
    assert threads_and_workers(4, 16, 64, augmenting=False, model="resnet18") == (4, 0)
    assert threads_and_workers(4, 16, 64, augmenting=False) == (2, 0)


def test_an_oversubscribed_machine_gets_one_thread_and_says_why(monkeypatch) -> None:
    """Cores held by other processes (5-minute load above 1.5 per core): one thread, no workers;
    our own previous run alone (load up to one per core) never counts as busy."""
    from datakit.engine import defaults

    assert defaults.threads_and_workers(16, 64, 64, augmenting=True, load=40.0) == (1, 0)
    assert defaults.threads_and_workers(2, 64, 64, augmenting=True, load=2.5) == (2, 0)
    manifest = synthetic_manifest({"a": 300, "b": 300}, sides=(64, 64))
    config = cfg.resolve_config()
    monkeypatch.setattr(defaults, "available_cores", lambda: 2)
    chosen = []
    for load in (0.5, 25.0):
        monkeypatch.setattr(defaults, "machine_load", lambda load=load: load)
        _, derivation = defaults.derive_config(manifest, config, "classification")
        chosen.append({d.key: (d.value, d.reason) for d in derivation.derived if d.key == "train.threads"})
    assert chosen[0]["train.threads"][0] == 2 and chosen[1]["train.threads"][0] == 1
    assert "oversubscribed" in chosen[1]["train.threads"][1] and "25.0" in chosen[1]["train.threads"][1]
    user = cfg.resolve_config(None, {"train.threads": 2})
    _, derivation = defaults.derive_config(manifest, user, "classification")
    assert "train.threads" not in {d.key for d in derivation.derived}  # the user's choice wins


def test_threads_and_workers_are_derived_unless_set_and_not_under_torchrun() -> None:
    manifest = synthetic_manifest({"a": 300, "b": 300}, sides=(64, 64))
    config = cfg.resolve_config()
    stats = data_stats(manifest, config)
    values = {d.key: d.value for d in derive(stats, config, set(), cores=8).derived}
    assert values["data.workers"] == 2 and values["train.threads"] == 4  # 64 px x batch 16, on 8 cores
    user = cfg.resolve_config(None, {"workers": 0, "train.threads": 3})
    values = {d.key: d.value for d in derive(stats, user, cfg.user_set_keys(user), cores=8).derived}
    assert "data.workers" not in values and "train.threads" not in values
    assert not {"data.workers", "train.threads"} & {d.key for d in derive(stats, config, set(), cores=8,
                                                                           processes=4).derived}


def test_print_config_with_a_manifest_shows_the_derived_values(digits_small) -> None:
    import yaml
    from typer.testing import CliRunner

    from datakit.cli import app

    result = CliRunner().invoke(app, ["train", str(digits_small), "--print-config", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert result.stdout.startswith("# task: auto resolves to classification on this manifest (auto: ")
    assert printed["task"] == "auto" and printed["train"]["batch_size"] == 16  # set: kept
    assert printed["data"]["image_size"] == 16 and printed["augment"] == "light:fixed"  # 8 px digits: derived
    assert printed["train"]["epochs"] == math.ceil(2000 / math.ceil(420 / 16))  # a ~2,000-step budget
