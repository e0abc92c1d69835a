"""Resizing for a model goes through augmentation.targets: boxes, instance masks and label masks
follow the pixels, and the image is exactly what cv2.resize gave before."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datakit.augmentation.resize import POLICIES, resize_image, resize_sample
from datakit.augmentation.targets import Sample
from datakit.errors import DatakitError


def _reference(image: np.ndarray, height: int, width: int, policy: str) -> np.ndarray:
    """The resize datakit did with cv2 directly, before resizing moved into augmentation/."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if policy == "stretch":
        out_h, out_w = height, width
    else:
        scale = min(height / h, width / w) if policy == "letterbox" else max(height / h, width / w)
        out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    shrinking = out_h * out_w < h * w
    resized = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    if policy == "stretch":
        return resized
    if policy == "crop":
        top, left = (out_h - height) // 2, (out_w - width) // 2
        return resized[top:top + height, left:left + width]
    canvas = np.zeros((height, width, image.shape[2]), dtype=image.dtype)
    top, left = (height - out_h) // 2, (width - out_w) // 2
    canvas[top:top + out_h, left:left + out_w] = resized
    return canvas


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("shape", [(50, 100, 3), (120, 40, 3), (20, 30, 3), (33, 90, 1), (64, 64, 1), (48, 16, 3)])
def test_the_image_is_what_cv2_gave(policy: str, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    for size in ((32, 32), (40, 24), (64, 96)):
        out = resize_image(image, *size, policy)
        assert out.shape == (*size, shape[2])
        np.testing.assert_array_equal(out, _reference(image, *size, policy))
        # with targets (through targets.apply) the pixels are the same
        np.testing.assert_array_equal(resize_sample(Sample(image=image), *size, policy).sample.image, out)


def test_letterbox_moves_boxes_and_instance_masks_with_the_pixels() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    masks = np.zeros((1, 50, 100), dtype=np.uint8)
    masks[0, 10:20, 10:30] = 1
    image[10:20, 10:30] = 255
    result = resize_sample(Sample(image=image, boxes=[[10, 10, 20, 10]], labels=[4], masks=masks), 64, 64, "letterbox")
    # scale 0.64 (100 -> 64 wide, 50 -> 32 high), 16 rows of padding on top
    out = result.sample
    assert out.image.shape == (64, 64, 3) and out.masks.shape == (1, 64, 64)
    x, y, w, h = out.boxes[0]
    assert out.labels.tolist() == [4] and result.dropped == []
    # the box is the mask's (recomputed from it), and both sit where the white pixels went
    rows, cols = np.nonzero(out.masks[0])
    assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min())
    assert x == pytest.approx(6.4, abs=1) and y == pytest.approx(16 + 6.4, abs=1)
    assert w == pytest.approx(12.8, abs=1) and h == pytest.approx(6.4, abs=1)
    white = np.argwhere(out.image[:, :, 0] > 128)
    assert white[:, 0].min() >= y - 1 and white[:, 0].max() <= y + h and white[:, 1].min() >= x - 1


def test_stretch_scales_boxes_per_axis_and_label_masks_stay_class_ids() -> None:
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    semantic = np.zeros((40, 80), dtype=np.uint8)
    semantic[:, 40:] = 3
    semantic[10:30, 5:25] = 7
    result = resize_sample(Sample(image=image, boxes=[[8, 4, 40, 20]], labels=[1], semantic_mask=semantic),
                           30, 50, "stretch")
    out = result.sample
    np.testing.assert_allclose(out.boxes[0], [8 * 50 / 80, 4 * 30 / 40, 40 * 50 / 80, 20 * 30 / 40], atol=1e-6)
    assert out.semantic_mask.shape == (30, 50)
    assert set(np.unique(out.semantic_mask)) == {0, 3, 7}  # nearest neighbour: no blended class ids


def test_crop_reports_objects_it_cuts_away() -> None:
    image = np.zeros((40, 120, 3), dtype=np.uint8)
    boxes = [[2, 5, 10, 10], [55, 10, 10, 10]]  # the first is in the part a centre crop removes
    result = resize_sample(Sample(image=image, boxes=boxes, labels=[0, 1]), 32, 32, "crop")
    assert result.sample.labels.tolist() == [1]
    assert [d.index for d in result.dropped] == [0] and "cut off" in result.dropped[0].reason
    x, y, w, h = result.sample.boxes[0]
    assert 0 <= x and x + w <= 32 and 0 <= y and y + h <= 32


def test_bad_policy_or_size_is_a_clear_error() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(DatakitError, match="unknown resize policy 'squash'"):
        resize_image(image, 4, 4, "squash")
    with pytest.raises(DatakitError, match="positive size"):
        resize_image(image, 0, 4, "stretch")
