"""Property test: random pipelines drawn from the presets' transforms never put boxes, labels and
masks out of step. A few hundred examples by default; thousands in the slow-marked run."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datakit.augmentation import presets, targets
from datakit.geometry import rle_to_mask


@lru_cache(maxsize=1)
def _transforms() -> list[A.BasicTransform]:
    """Every distinct transform the presets build, for every task and orientation (OneOf opened up)."""
    seen: dict[str, A.BasicTransform] = {}
    for preset in presets.PRESETS.values():
        for task in presets.PRESET_TASKS:
            for orientation in presets.ORIENTATIONS:
                for t in preset.build(task, orientation):
                    for leaf in (t.transforms if isinstance(t, A.BaseCompose) else [t]):
                        key = json.dumps(leaf.to_dict(), sort_keys=True, default=str)
                        seen.setdefault(key, leaf)
    return list(seen.values())


@lru_cache(maxsize=1)
def _samples() -> list[targets.Sample]:
    """Real `shapes` images with their instance masks (the truth), made once."""
    import atexit
    import shutil
    import tempfile

    import datakit
    from datakit.manifest import load_manifest

    tmp = Path(tempfile.mkdtemp(prefix="datakit-prop-"))
    atexit.register(shutil.rmtree, tmp, True)
    datakit.sample("shapes", tmp / "s", count=6, objects=(2, 4), size=48, show_progress=False)
    datakit.ingest(tmp / "s", tmp / "m", show_progress=False)
    m = load_manifest(tmp / "m")
    ids = m.category_ids()
    out = []
    for row in m.images.itertuples():
        import cv2

        image = cv2.cvtColor(cv2.imread(str(m.root() / row.path)), cv2.COLOR_BGR2RGB)
        ann = m.annotations[m.annotations["image_id"] == row.id]
        masks = np.stack([rle_to_mask(json.loads(s)) for s in ann["segmentation"]])
        boxes = ann[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(float)
        out.append(targets.Sample(image=image, boxes=boxes, labels=[ids[c] for c in ann["category"]], masks=masks))
    return out


def _check(result: targets.Result, sample: targets.Sample, with_masks: bool) -> None:
    out = result.sample
    n = len(sample.boxes)
    assert len(out.boxes) == len(out.labels) == len(result.kept) == len(result.clipped)
    assert sorted(result.kept.tolist() + [d.index for d in result.dropped]) == list(range(n))
    assert out.labels.tolist() == sample.labels[result.kept].tolist()
    height, width = out.image.shape[:2]
    assert np.all(out.boxes[:, 2:] > 0)
    assert np.all(out.boxes[:, 0] >= 0) and np.all(out.boxes[:, 1] >= 0)
    assert np.all(out.boxes[:, 0] + out.boxes[:, 2] <= width + 1e-6)
    assert np.all(out.boxes[:, 1] + out.boxes[:, 3] <= height + 1e-6)
    fates = result.objects(n)
    assert len(fates) == n and sum(f["status"] != "dropped" for f in fates) == len(result.kept)
    if with_masks:
        assert len(out.masks) == len(out.boxes)
        for box, mask in zip(out.boxes, out.masks):
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (box[0], box[1], box[0] + box[2], box[1] + box[3])


def _property(data: st.DataObject) -> None:
    pool = _transforms()
    chosen = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=5), label="transforms")
    always = data.draw(st.booleans(), label="p=1")
    transforms = []
    for i in chosen:
        t = A.from_dict({"transform": pool[i].to_dict()["transform"]})
        if always:
            t.p = 1.0
        transforms.append(t)
    visibility = data.draw(st.sampled_from([0.0, 0.3, 0.5]), label="min_visibility")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    sample = _samples()[data.draw(st.integers(0, len(_samples()) - 1), label="image")]
    pipeline = targets.compose(transforms, seed=seed, min_visibility=visibility, min_area=4.0)
    _check(targets.apply(pipeline, sample), sample, with_masks=True)
    boxes_only = targets.Sample(image=sample.image, boxes=sample.boxes, labels=sample.labels)
    pipeline.set_random_seed(seed)
    _check(targets.apply(pipeline, boxes_only), boxes_only, with_masks=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_preset_pipelines_keep_boxes_labels_and_masks_in_step(data: st.DataObject) -> None:
    _property(data)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_preset_pipelines_keep_everything_in_step_thousands(data: st.DataObject) -> None:
    _property(data)
