"""Contract test over the preset registry: every preset, task and orientation builds a pipeline
that keeps the image size, moves every target in step, serializes, and is deterministic by seed."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from datakit.augmentation import presets, specs, targets
from datakit.errors import DatakitError

CASES = [(name, task, orient) for name in presets.PRESETS for task in presets.PRESET_TASKS
         for orient in presets.ORIENTATIONS]


def _scene(channels: int = 3) -> targets.Sample:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 60, size=(48, 64, channels), dtype=np.uint8)
    rects = [(4, 5, 14, 10), (30, 18, 20, 16), (52, 36, 12, 12)]
    masks = np.zeros((3, 48, 64), np.uint8)
    semantic = np.zeros((48, 64), np.uint8)
    for i, (x, y, w, h) in enumerate(rects):
        masks[i, y:y + h, x:x + w] = 1
        semantic[y:y + h, x:x + w] = i + 1
        image[y:y + h, x:x + w] = 120 + 40 * i
    return targets.Sample(image=image, boxes=np.array(rects, float), labels=[1, 2, 3], masks=masks, semantic_mask=semantic)


def test_registry_has_the_three_presets_with_stated_assumptions() -> None:
    assert list(presets.PRESETS) == ["light", "medium", "heavy"]
    for preset in presets.PRESETS.values():
        assert preset.summary and preset.assumes and preset.name == preset.name.lower()


@pytest.mark.parametrize(("name", "task", "orientation"), CASES)
def test_preset_contract(name: str, task: str, orientation: str) -> None:
    pipeline = specs.resolve(f"{name}:{orientation}", task=task, seed=7)
    names = {type(t).__name__ for t in pipeline.compose.transforms}
    # only transforms that move targets with the pixels, or touch pixel values only
    for t in pipeline.compose.transforms:
        assert isinstance(t, (A.DualTransform, A.ImageOnlyTransform, A.BaseCompose)), type(t).__name__
    if orientation == "fixed":
        assert not names & {"HorizontalFlip", "VerticalFlip", "RandomRotate90"}
    if orientation == "upright":
        assert "HorizontalFlip" in names and "VerticalFlip" not in names
    # round trip through albumentations' serialized form keeps the pipeline (and its hash)
    again = specs.from_header({"pipeline": pipeline.serialized()})
    assert specs.pipeline_hash(specs.serialize(again)) == pipeline.hash()
    for channels in (3, 1):
        sample = _scene(channels)
        outputs = []
        for _ in range(2):
            pipeline.compose.set_random_seed(11)
            outputs.append(targets.apply(pipeline.compose, sample))
        first, second = outputs
        np.testing.assert_array_equal(first.sample.image, second.sample.image)  # same seed, same pixels
        out = first.sample
        assert out.image.shape[:2] == sample.image.shape[:2] and out.image.dtype == np.uint8
        assert len(out.boxes) == len(out.labels) == len(out.masks) == len(first.kept)
        assert sorted(first.kept.tolist() + [d.index for d in first.dropped]) == [0, 1, 2]
        assert out.semantic_mask.shape == sample.semantic_mask.shape
        assert set(np.unique(out.semantic_mask)) <= {0, 1, 2, 3}
    # the online (image-only) form runs on a bare image
    assert specs.resolve(f"{name}:{orientation}", task=task, seed=1).image_only()(image=_scene().image)["image"].shape == (48, 64, 3)


def test_object_tasks_drop_objects_mostly_cut_off() -> None:
    for preset in presets.PRESETS.values():
        assert preset.box_params("detection")["min_visibility"] > 0
        assert preset.box_params("classification") == {"min_visibility": 0.0, "min_area": 0.0}


def test_unknown_preset_and_orientation_name_the_closest() -> None:
    with pytest.raises(DatakitError, match="unknown preset 'meduim'; did you mean 'medium'"):
        specs.resolve("meduim")
    with pytest.raises(DatakitError, match="unknown orientation 'fixd'; did you mean 'fixed'"):
        specs.resolve("medium:fixd")
