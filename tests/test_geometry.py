"""Boxes, polygons, RLE and masks: conversions agree with each other and with pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from datakit import geometry
from datakit.errors import DatakitError
from tests.formats_data import uncompressed_rle


def blob(height: int = 20, width: int = 30) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[3:11, 5:17] = 1
    mask[8:15, 12:25] = 1
    return mask


def test_box_conversions_are_inverse() -> None:
    box = (2.5, 3.0, 10.25, 4.0)
    assert geometry.xyxy_to_xywh(*geometry.xywh_to_xyxy(box)) == box
    polygon = geometry.box_to_polygon(box)
    assert polygon == [2.5, 3.0, 12.75, 3.0, 12.75, 7.0, 2.5, 7.0]
    assert geometry.polygons_box([polygon]) == box


def test_clip_box_and_problems() -> None:
    assert geometry.clip_box((-2, 5, 10, 10), 6, 12) == (0, 5, 6, 7)
    assert geometry.box_problem((0, 0, 0, 5), 10, 10) == "has zero or negative size"
    assert geometry.box_problem((0, 0, -1, 5), None, None) == "has zero or negative size"
    assert geometry.box_problem((8, 0, 5, 5), 10, 10) == "extends outside the 10x10 image"
    assert geometry.box_problem((0, 0, float("nan"), 5), 10, 10) == "has a coordinate that is not a finite number"
    assert geometry.box_problem((0, 0, 10, 10), 10, 10) is None


def test_polygon_problems() -> None:
    assert geometry.polygon_problem([0, 0, 1, 0]) == "has 2 point(s); a polygon needs at least 3"
    assert geometry.polygon_problem([0, 0, 1, 0, 1]) == "has an odd number of coordinates (5)"
    assert geometry.polygon_problem([0, 0, "1", 0, 1, 1]) == "is not a list of numbers"
    assert geometry.polygon_problem([0, 0, 1.5, 0, 1, 1]) is None


def test_square_polygon_rasterizes_to_its_area_and_box() -> None:
    rle = geometry.polygons_to_rle([[0, 0, 10, 0, 10, 10, 0, 10]], 20, 30)
    assert isinstance(rle["counts"], str) and rle["size"] == [20, 30]
    assert geometry.rle_area(rle) == 100.0
    assert geometry.rle_box(rle) == (0.0, 0.0, 10.0, 10.0)


def test_mask_rle_round_trip_and_box() -> None:
    mask = blob()
    rle = geometry.mask_to_rle(mask)
    np.testing.assert_array_equal(geometry.rle_to_mask(rle), mask)
    assert geometry.rle_area(rle) == float(mask.sum())
    ys, xs = np.nonzero(mask)
    assert geometry.mask_box(mask) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_uncompressed_rle_compresses_to_the_same_pixels() -> None:
    mask = blob()
    raw = uncompressed_rle(mask)
    compressed = geometry.compress_rle(raw)
    assert isinstance(compressed["counts"], str)
    np.testing.assert_array_equal(geometry.rle_to_mask(compressed), mask)
    expected = mask_utils.frPyObjects(raw, 20, 30)
    assert compressed["counts"].encode() == expected["counts"]


def test_rle_problems_name_the_disagreement() -> None:
    raw = uncompressed_rle(blob())
    assert geometry.rle_problem(raw, 20, 30) is None
    assert geometry.rle_problem(raw, 30, 20) == "RLE size [20, 30] disagrees with the 20x30 image (size is [height, width])"
    bad = {"size": [20, 30], "counts": [5, 10]}
    assert geometry.rle_problem(bad, 20, 30) == "uncompressed RLE counts sum to 15, not height*width = 600"
    assert geometry.rle_problem({"counts": "abc"}, 20, 30) == "RLE must be an object with 'size' and 'counts'"


def test_mask_to_polygons_reports_holes_and_keeps_the_outline() -> None:
    ring = np.zeros((30, 30), dtype=np.uint8)
    ring[5:25, 5:25] = 1
    ring[12:18, 12:18] = 0
    polygons, lost = geometry.mask_to_polygons(ring)
    assert len(polygons) == 1 and lost == "1 hole(s) dropped"
    filled = geometry.rle_to_mask(geometry.polygons_to_rle(polygons, 30, 30))
    outer = np.zeros_like(ring)
    outer[5:25, 5:25] = 1
    iou = (filled & outer).sum() / (filled | outer).sum()
    assert iou > 0.85
    _, lost_none = geometry.mask_to_polygons(outer)
    assert lost_none is None


def test_voc_colormap_matches_the_devkit() -> None:
    colours = geometry.voc_colormap()
    assert colours[0].tolist() == [0, 0, 0]
    assert colours[1].tolist() == [128, 0, 0]
    assert colours[15].tolist() == [192, 128, 128]
    assert colours[255].tolist() == [224, 224, 192]


def test_label_png_palette_rgb_and_16_bit(tmp_path) -> None:
    values = np.array([[0, 1, 2], [15, 255, 1]], dtype=np.int64)
    geometry.write_label_png(tmp_path / "p.png", values, geometry.voc_colormap())
    with Image.open(tmp_path / "p.png") as image:
        assert image.mode == "P"
        rgb = np.array(image.convert("RGB"))
    np.testing.assert_array_equal(geometry.read_label_png(tmp_path / "p.png"), values)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(geometry.read_label_png(tmp_path / "rgb.png"), values)
    rgb[1, 2] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(DatakitError, match=r"odd.png: pixel \(row 1, column 2\) has colour \(1, 2, 3\), which is not in the palette"):
        geometry.read_label_png(tmp_path / "odd.png")
    ids = np.array([[0, 300], [2, 65000]])
    geometry.write_label_png(tmp_path / "ids.png", ids)
    np.testing.assert_array_equal(geometry.read_label_png(tmp_path / "ids.png"), ids)


def test_segmentation_rle_of_every_kind(tmp_path) -> None:
    mask = blob()
    instance_map = mask.astype(np.uint16) * 7
    geometry.write_label_png(tmp_path / "inst.png", instance_map, sixteen_bit=True)
    from_file = geometry.segmentation_rle("mask_file", {"path": "inst.png", "value": 7}, 20, 30, tmp_path)
    from_rle = geometry.segmentation_rle("rle", uncompressed_rle(mask), 20, 30)
    assert from_file == from_rle == geometry.mask_to_rle(mask)
    with pytest.raises(DatakitError, match=r"mask file '../inst.png' leaves the image root; refused"):
        geometry.segmentation_rle("mask_file", {"path": "../inst.png", "value": 7}, 20, 30, tmp_path / "sub")
