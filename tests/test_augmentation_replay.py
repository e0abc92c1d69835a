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
        recorded = targets.decode_applied(encoded)  # GaussNoise's noise map too: regenerated, not skipped
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


# transforms that draw an array the size of the image (recorded by hash + random state), and two
# that draw only a small seed of their own (recorded whole)
NOISE = [(A.GaussNoise(std_range=(0.05, 0.2), p=1.0), True), (A.MultiplicativeNoise(elementwise=True, p=1.0), True),
         (A.SaltAndPepper(p=1.0), True), (A.PixelDropout(p=1.0), True), (A.PlasmaBrightnessContrast(p=1.0), True),
         (A.ElasticTransform(p=1.0), True), (A.ISONoise(p=1.0), False), (A.ShotNoise(p=1.0), False)]


@pytest.mark.parametrize(("noise", "large"), NOISE, ids=lambda t: type(t).__name__ if not isinstance(t, bool) else "")
def test_noise_replays_exactly_from_the_recorded_parameters(noise, large: bool) -> None:
    pipeline = targets.compose([A.HorizontalFlip(p=1.0), noise])
    sample = _scene()
    first = targets.apply(pipeline, sample, seed=11)
    encoded = json.loads(json.dumps(targets.encode_applied(first.applied)))
    # a fresh pipeline, reseeded with another seed: only the recorded parameters and random state decide
    fresh = A.from_dict(A.to_dict(pipeline))
    again = targets.apply(fresh, sample, replay=targets.decode_applied(encoded), seed=12345)
    np.testing.assert_array_equal(again.sample.image, first.sample.image)
    np.testing.assert_array_equal(again.sample.masks, first.sample.masks)
    assert not np.array_equal(targets.apply(fresh, sample, seed=12345).sample.image, first.sample.image)
    assert (targets.RANDOM_STATE in encoded[-1]) == large
    if large:
        # the record of a large array is its hash: a random state that does not give it back is refused
        tampered = json.loads(json.dumps(encoded))
        tampered[-1][targets.RANDOM_STATE]["numpy"]["state"]["state"] += 1
        with pytest.raises(DatakitError, match="regenerated from the recorded random state differs"):
            targets.apply(fresh, sample, replay=targets.decode_applied(tampered))


def test_a_large_array_without_its_random_state_names_the_transform() -> None:
    pipeline = targets.compose([A.GaussNoise(p=1.0)])
    encoded = json.loads(json.dumps(targets.encode_applied(targets.apply(pipeline, _scene(), seed=1).applied)))
    del encoded[0][targets.RANDOM_STATE]  # as written before the random state was recorded
    with pytest.raises(DatakitError, match="GaussNoise.params.noise_map: array of shape .* was not recorded"):
        targets.decode_applied(encoded)


@pytest.mark.parametrize("preset", ["medium", "heavy"])
def test_the_image_only_twin_draws_what_the_pipeline_draws(preset: str) -> None:
    """The offline writer's shortcut (targets.image_only for an image without objects) changes no
    output byte, and seeding "shared" (outputs made before streams per transform) is albumentations'
    own set_random_seed."""
    pipeline = specs.resolve(f"{preset}:any", task="detection")
    image = _scene().image
    for seed in range(12):
        targets.reseed(pipeline.compose, seed)
        reference = targets.apply(pipeline.compose, targets.Sample(image=image)).sample.image
        fast = targets.apply(pipeline.compose, targets.Sample(image=image), seed=seed)
        np.testing.assert_array_equal(fast.sample.image, reference)
        pipeline.compose.set_random_seed(seed)
        before = targets.apply(pipeline.compose, targets.Sample(image=image)).sample.image
        shared = targets.apply(pipeline.compose, targets.Sample(image=image), seed=seed, seeding="shared")
        np.testing.assert_array_equal(shared.sample.image, before)
    assert targets.image_only(pipeline.compose) is targets.image_only(pipeline.compose)
    assert not targets.image_only(pipeline.compose).processors and pipeline.compose.processors


def test_each_transform_decides_on_its_own_whether_it_applies() -> None:
    """albumentations' set_random_seed gives every transform the same seed, so each makes the same
    first draw, random() < p: two p=0.5 flips applied together or not at all, and a p=0.3 step never
    without both. Seeded by targets.reseed, each draws from a stream of its own."""
    from collections import Counter

    pipeline = targets.compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomBrightnessContrast(p=0.3)])
    image = _scene().image

    def applied(seeding: str) -> Counter:
        return Counter(tuple(step["name"] for step in targets.apply(pipeline, targets.Sample(image=image), seed=seed,
                                                                    seeding=seeding).applied) for seed in range(400))

    own = applied(targets.SEEDING)
    both_flips = sum(n for names, n in own.items() if {"HorizontalFlip", "VerticalFlip"} <= set(names))
    assert 70 < both_flips < 130  # binomial(400, 0.25): mean 100, sd 8.7
    assert 40 < own[()] < 100  # nothing applied: 400 * 0.25 * 0.7 = 70, sd 7.8
    assert 10 < own[("RandomBrightnessContrast",)] < 55  # 400 * 0.25 * 0.3 = 30, sd 5.2
    shared = applied("shared")
    assert set(shared) <= {(), ("HorizontalFlip", "VerticalFlip"), ("HorizontalFlip", "VerticalFlip",
                                                                    "RandomBrightnessContrast")}


def test_derived_noisy_images_replay_byte_for_byte(tmp_path: Path) -> None:
    manifest = shapes_manifest(tmp_path, count=4)
    spec = tmp_path / "noisy.yaml"
    spec.write_text("- HorizontalFlip: {p: 0.5}\n- GaussNoise: {std_range: [0.05, 0.1], p: 1.0}\n")
    out = tmp_path / "out"
    datakit.augment(manifest, out, spec=spec, copies=1, split="all", show_progress=False)
    m = load_manifest(out)
    objects = _objects_by_image(m)
    parents = m.images.set_index("id", drop=False)
    derived = m.images[m.images["parent_id"].notna()]
    assert len(derived) == 4
    for row in derived.itertuples():
        recorded = json.loads(row.applied)
        assert any(step["name"] == "GaussNoise" and targets.RANDOM_STATE in step for step in recorded)
        (job, *_), = _jobs_for([(parents.loc[row.parent_id], 0)], m, objects, row.pipeline, 0, 0)
        job.seed = 999
        compose = specs.from_header(m.pipelines[row.pipeline])
        done = rendering.render(compose, job, replay=targets.decode_applied(recorded))
        assert done.image == (out / "images" / row.path).read_bytes()


# arguments for the transforms of targets.SMALL_PARAMS that have required ones (others: defaults, p=1)
_REQUIRED = {"RandomCrop": {"height": 32, "width": 40}, "CenterCrop": {"height": 32, "width": 40},
             "RandomResizedCrop": {"size": (40, 56)}, "RandomSizedCrop": {"min_max_height": (20, 40), "size": (40, 56)},
             "Resize": {"height": 96, "width": 128}, "PadIfNeeded": {"min_height": 96, "min_width": 128},
             "LongestMaxSize": {"max_size": 128}, "SmallestMaxSize": {"max_size": 96},
             "Affine": {"rotate": (-180, 180), "scale": (0.5, 2.0), "shear": (-20, 20)},
             "CropAndPad": {"percent": (-0.3, 0.2), "sample_independently": True}}


@pytest.mark.parametrize("name", sorted(targets.SMALL_PARAMS))
def test_transforms_listed_as_small_record_only_small_parameters(name: str) -> None:
    """Their random state is not captured, so their parameters must always be recorded whole."""
    transform = getattr(A, name)(p=1.0, **_REQUIRED.get(name, {}))
    for seed in range(3):
        result = targets.apply(targets.compose([transform]), _scene(), seed=seed)
        encoded = json.loads(json.dumps(targets.encode_applied(result.applied)))
        assert not any(targets.RANDOM_STATE in step for step in encoded)
        assert "__ndarray__\": null" not in json.dumps(encoded), encoded
