"""Applied-parameter replay: what a run recorded applies again to the same pixels and targets."""

from __future__ import annotations

import json
from pathlib import Path

import albumentations as A
import numpy as np
import pytest

import datakit
from datakit.augmentation import render as rendering
from datakit.augmentation import specs, targets
from datakit.augmentation.offline import _jobs_for, _objects_by_image
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from tests.augment_data import shapes_manifest
from tests.test_augmentation_presets import CASES, _scene


@pytest.mark.parametrize(("name", "task", "orientation"), [c for c in CASES if c[1] == "instance_segmentation"])
def test_recorded_parameters_replay_to_the_same_result(name: str, task: str, orientation: str) -> None:
    pipeline = specs.resolve(f"{name}:{orientation}", task=task)
    sample = _scene()
    for seed in range(6):
        pipeline.compose.set_random_seed(seed)
        first = targets.apply(pipeline.compose, sample)
        encoded = json.loads(json.dumps(targets.encode_applied(first.applied)))
        try:
            recorded = targets.decode_applied(encoded)
        except DatakitError as exc:
            assert "was not recorded (too large)" in str(exc)  # e.g. GaussNoise's noise map
            continue
        # a fresh pipeline object from the serialized form, another seed: only the parameters decide
        fresh = specs.from_header({"pipeline": pipeline.serialized()})
        fresh.set_random_seed(seed + 1000)
        again = targets.apply(fresh, sample, replay=recorded)
        np.testing.assert_array_equal(again.sample.image, first.sample.image)
        np.testing.assert_array_equal(again.sample.boxes, first.sample.boxes)
        np.testing.assert_array_equal(again.sample.masks, first.sample.masks)
        np.testing.assert_array_equal(again.sample.semantic_mask, first.sample.semantic_mask)
        assert again.kept.tolist() == first.kept.tolist()
        # and the pipeline draws freely again afterwards
        assert not any(step.replay_mode for step in targets.leaves(fresh))


def test_a_transform_not_chosen_by_one_of_records_nothing() -> None:
    pipeline = targets.compose([A.OneOf([A.Blur(p=1.0), A.MotionBlur(p=1.0)], p=1.0), A.HorizontalFlip(p=1.0)])
    sample = _scene()
    names = set()
    for seed in range(8):
        pipeline.set_random_seed(seed)
        applied = targets.apply(pipeline, sample).applied
        assert [a["name"] for a in applied][-1] == "HorizontalFlip" and len(applied) == 2
        names.add(applied[0]["name"])
    assert names == {"Blur", "MotionBlur"}


def test_replay_refuses_parameters_of_another_pipeline() -> None:
    sample = _scene()
    applied = targets.apply(targets.compose([A.HorizontalFlip(p=1.0)]), sample).applied
    with pytest.raises(DatakitError, match="transform 0 is VerticalFlip but the parameters were recorded for HorizontalFlip"):
        targets.apply(targets.compose([A.VerticalFlip(p=1.0)]), sample, replay=applied)


def test_derived_images_replay_from_their_recorded_parameters(tmp_path: Path) -> None:
    manifest = shapes_manifest(tmp_path, count=6)
    out = tmp_path / "out"
    datakit.augment(manifest, out, preset="medium:any", copies=2, split="all", show_progress=False)
    m = load_manifest(out)
    objects = _objects_by_image(m)
    parents = m.images.set_index("id", drop=False)
    derived = m.images[m.images["parent_id"].notna()]
    for row in derived.itertuples():
        (job, *_), = _jobs_for([(parents.loc[row.parent_id], 0)], m, objects, row.pipeline, 0, 0)
        job.seed = 999  # not the recorded seed: the parameters alone must reproduce the image
        compose = specs.from_header(m.pipelines[row.pipeline])
        done = rendering.render(compose, job, replay=targets.decode_applied(json.loads(row.applied)))
        assert done.image == (out / "images" / row.path).read_bytes()
