"""Boxes, labels and masks follow the pixels through augmentation.targets.apply."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from datakit.augmentation import targets
from datakit.errors import DatakitError


def _scene(width: int = 96, height: int = 64) -> targets.Sample:
    """Three filled rectangles of known pixels; semantic mask holds their class ids."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    rects = [(5, 6, 20, 10), (40, 20, 30, 25), (80, 50, 16, 14)]  # the last touches the right and bottom edges
    labels = [1, 2, 3]
    masks = np.zeros((len(rects), height, width), dtype=np.uint8)
    semantic = np.zeros((height, width), dtype=np.uint8)
    for i, ((x, y, w, h), label) in enumerate(zip(rects, labels)):
        masks[i, y:y + h, x:x + w] = 1
        semantic[y:y + h, x:x + w] = label
        image[y:y + h, x:x + w] = (200, 50 * label, 255 - 60 * label)
    return targets.Sample(image=image, boxes=np.array(rects, dtype=float), labels=labels, masks=masks,
                          semantic_mask=semantic)


def test_horizontal_flip_moves_each_box_to_w_minus_x_minus_w() -> None:
    sample = _scene()
    width = sample.image.shape[1]
    result = targets.apply(targets.compose([A.HorizontalFlip(p=1.0)]), sample)
    expected = sample.boxes.copy()
    expected[:, 0] = width - sample.boxes[:, 0] - sample.boxes[:, 2]
    np.testing.assert_allclose(result.sample.boxes, expected)
    assert result.sample.labels.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(result.sample.semantic_mask, sample.semantic_mask[:, ::-1])
    assert result.dropped == []


def test_rotation_and_crop_keep_boxes_around_their_masks_and_masks_on_their_pixels() -> None:
    sample = _scene()
    pipeline = targets.compose([A.Affine(rotate=(25, 25), p=1.0), A.RandomCrop(48, 64, p=1.0)], seed=3)
    for _ in range(20):
        result = targets.apply(pipeline, sample)
        out = result.sample
        assert len(out.boxes) == len(out.labels) == len(out.masks) == len(result.kept)
        assert len(result.kept) + len(result.dropped) == 3
        for box, mask, label in zip(out.boxes, out.masks, out.labels):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= box[0] and xs.max() + 1 <= box[0] + box[2]
            assert ys.min() >= box[1] and ys.max() + 1 <= box[1] + box[3]
            # the mask sits on the object's colour: inside its 1-px border (where bilinear image
            # interpolation blends with the background) its pixels have the class's green channel
            inner = cv2.erode(mask, np.ones((3, 3), np.uint8))
            ys, xs = np.nonzero(inner)
            green = out.image[ys, xs, 1].astype(int)
            assert np.all(np.abs(green - 50 * label) < 30)
        # nearest-neighbour: no class id is invented by interpolation
        assert set(np.unique(out.semantic_mask)) <= {0, 1, 2, 3}


def test_objects_cut_off_are_dropped_with_a_reason() -> None:
    sample = _scene()
    # the left 30 columns hold only the first rectangle
    result = targets.apply(targets.compose([A.Crop(x_min=40, y_min=0, x_max=96, y_max=64, p=1.0)]), sample)
    assert result.kept.tolist() == [1, 2]
    assert result.dropped == [targets.DroppedObject(0, targets.REASON_FILTERED)]
    np.testing.assert_allclose(result.sample.boxes, [[0, 20, 30, 25], [40, 50, 16, 14]])


def test_boxes_past_the_edge_by_float_drift_never_raise() -> None:
    sample = _scene()
    sample.boxes[2, 2] += 0.0003 * 96  # ends at 1.0003 of the width
    sample.masks = None
    result = targets.apply(A.Compose([A.HorizontalFlip(p=1.0)]), sample)  # a plain Compose is wrapped
    assert len(result.sample.boxes) == 3
    assert result.sample.boxes[:, 0].min() >= 0


def test_degenerate_input_box_is_reported_not_passed_on() -> None:
    sample = targets.Sample(image=np.zeros((10, 10, 3), np.uint8), boxes=[[2, 2, 3, 3], [12, 2, 3, 3]], labels=[1, 2])
    result = targets.apply(targets.compose([A.NoOp()]), sample)
    assert result.kept.tolist() == [0]
    assert result.dropped == [targets.DroppedObject(1, targets.REASON_INVALID_INPUT)]


def test_counts_out_of_step_are_refused() -> None:
    with pytest.raises(DatakitError, match="labels"):
        targets.Sample(image=np.zeros((4, 4, 3), np.uint8), boxes=[[0, 0, 1, 1]], labels=[1, 2])
    with pytest.raises(DatakitError, match="one per box"):
        targets.Sample(image=np.zeros((4, 4, 3), np.uint8), boxes=[[0, 0, 1, 1]], labels=[1],
                       masks=np.zeros((2, 4, 4), np.uint8))


def test_image_only_pipeline_works_without_targets() -> None:
    image = np.full((8, 12, 3), 7, np.uint8)
    result = targets.apply(A.Compose([A.Resize(16, 24)]), targets.Sample(image=image))
    assert result.sample.image.shape == (16, 24, 3)
    assert len(result.sample.boxes) == 0 and result.dropped == []
