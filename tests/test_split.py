"""Deterministic, stratified, duplicate-aware splits for training."""

from __future__ import annotations

import pandas as pd
import pytest

from datakit.errors import DatakitError
from datakit.splitting import plan_splits, stratified_split


def _images(per_class: dict[str, int], duplicates: int = 0) -> pd.DataFrame:
    rows = []
    for label, n in per_class.items():
        for i in range(n):
            rows.append({"id": f"{label}{i:04d}", "label": label, "sha256": f"h-{label}-{i}", "split": None})
    frame = pd.DataFrame(rows)
    # the first `duplicates` images of class a have the same content as images of class a shifted by one
    for i in range(duplicates):
        frame.loc[frame["id"] == f"a{i + 1:04d}", "sha256"] = f"h-a-{i}"
    return frame


def test_same_seed_same_split_and_other_seed_other_split() -> None:
    images = _images({"a": 50, "b": 30})
    first = stratified_split(images, 0.2, 0.1, seed=0)
    assert first.equals(stratified_split(images, 0.2, 0.1, seed=0))
    assert not first.equals(stratified_split(images, 0.2, 0.1, seed=1))
    # row order of the manifest does not matter
    shuffled = images.sample(frac=1.0, random_state=3)
    again = stratified_split(shuffled, 0.2, 0.1, seed=0)
    assert dict(zip(shuffled["id"], again)) == dict(zip(images["id"], first))


def test_every_class_is_split_in_proportion() -> None:
    images = _images({"a": 100, "b": 40, "c": 10})
    splits = stratified_split(images, 0.2, 0.1, seed=0)
    counts = pd.crosstab(images["label"], splits)
    assert counts.loc["a"].to_dict() == {"test": 10, "train": 70, "val": 20}
    assert counts.loc["b"].to_dict() == {"test": 4, "train": 28, "val": 8}
    assert counts.loc["c"].to_dict() == {"test": 1, "train": 7, "val": 2}


def test_small_classes_keep_a_training_image_and_get_val_and_test_when_possible() -> None:
    images = _images({"big": 40, "three": 3, "two": 2, "one": 1})
    splits = stratified_split(images, 0.15, 0.15, seed=0)
    by_class = pd.crosstab(images["label"], splits)
    assert by_class.loc["three"].to_dict() == {"test": 1, "train": 1, "val": 1}
    assert by_class.loc["two", "train"] >= 1
    assert by_class.loc["one"].to_dict().get("train") == 1


def test_identical_images_always_share_a_split() -> None:
    images = _images({"a": 40, "b": 40}, duplicates=15)
    for seed in range(5):
        splits = stratified_split(images, 0.3, 0.3, seed=seed)
        for digest, group in images.groupby("sha256"):
            assert splits[group.index].nunique() == 1, digest


def test_adding_a_class_does_not_reshuffle_the_others() -> None:
    before = stratified_split(_images({"a": 30, "b": 30}), 0.2, 0.2, seed=0)
    with_c = _images({"a": 30, "b": 30, "c": 30})
    after = stratified_split(with_c, 0.2, 0.2, seed=0)
    assert list(after[:60]) == list(before)


def test_plan_generates_when_the_manifest_has_no_splits() -> None:
    plan = plan_splits(_images({"a": 20, "b": 20}), 0.25, 0.25, seed=0)
    assert plan.source == "generated"
    assert plan.splits.value_counts().to_dict() == {"train": 20, "val": 10, "test": 10}
    assert "has no splits" in plan.message and "seed 0" in plan.message


def test_plan_keeps_manifest_splits_and_carves_val_from_train_when_missing() -> None:
    images = _images({"a": 20, "b": 20})
    images["split"] = ["test" if i % 5 == 0 else "train" for i in range(len(images))]
    plan = plan_splits(images, 0.25, 0.0, seed=0)
    assert plan.source == "manifest+val"
    assert (plan.splits[images["split"] == "test"] == "test").all()
    assert (plan.splits == "val").sum() == 8
    assert "no 'val' split" in plan.message


def test_plan_reports_images_without_a_split_when_others_have_one() -> None:
    images = _images({"a": 10, "b": 10})
    images["split"] = ["train", "val"] * 9 + [None, None]
    plan = plan_splits(images, 0.2, 0.2, seed=0)
    assert plan.source == "manifest"
    assert "2 images have no split and are not used" in plan.message
    assert plan.splits.isna().sum() == 2


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(DatakitError, match="leave room for train"):
        stratified_split(_images({"a": 5}), 0.6, 0.4, seed=0)
