"""LabelMe: rectangles in any point order, polygons, groups, flags as labels, round trip, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datakit import export, ingest, load_manifest
from datakit.convert import read_source
from datakit.errors import DatakitError
from datakit.formats.base import ReadOptions
from tests.conftest import write_jpeg
from tests.formats_data import boxes_by_file_name, exported_and_read_back, shapes_set, shared, two_image_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")


def labelme_file(root: Path, shapes: list[dict], image: str = "a.jpg", flags: dict | None = None, name: str = "a.json") -> Path:
    if "/" not in image and ".." not in image:
        write_jpeg(root / image, width=40, height=30)
    root.mkdir(parents=True, exist_ok=True)
    data = {"version": "5.0.1", "flags": flags or {}, "shapes": shapes, "imagePath": image, "imageData": None,
            "imageHeight": 30, "imageWidth": 40}
    (root / name).write_text(json.dumps(data, indent=2))
    return root


def shape(label: str, points: list, kind: str = "polygon", group: int | None = None) -> dict:
    return {"label": label, "points": points, "group_id": group, "shape_type": kind, "flags": {}}


def test_shared_labelme_rectangles() -> None:
    result = read_source(shared("labelme/bbox_labelme"), None, ReadOptions())
    assert result.format == "labelme"
    m = result.manifest
    assert len(m.images) == 3 and set(m.images["status"]) == {"ok"}
    assert m.annotations["category"].value_counts().to_dict() == {"person": 6, "bus": 2, "car": 1}
    first = m.annotations.iloc[0]
    assert (first["bbox_x"], first["bbox_w"]) == (191.0, 122.0)
    np.testing.assert_allclose((first["bbox_y"], first["bbox_h"]), (107.36900369003689, 222.00000000000006))
    assert m.annotations["segmentation_kind"].isna().all() and m.tasks == ["detection"]


def test_shared_labelme_flags_are_image_labels(tmp_path: Path) -> None:
    result = ingest(shared("labelme/classification_labelme"), tmp_path / "m", show_progress=False)
    m = load_manifest(tmp_path / "m")
    assert m.category_names == ["cat", "dog"] and m.tasks == ["classification"]
    assert result.label_counts == {"cat": 1, "dog": 1}


def test_rectangle_point_order_groups_and_attributes(tmp_path: Path) -> None:
    labelme_file(tmp_path, [
        shape("cat", [[30, 20], [10, 5]], "rectangle"),
        shape("dog", [[1, 1], [5, 1], [5, 5]], group=3),
        shape("dog", [[20, 20], [25, 20], [25, 28]], group=3),
        {**shape("dog", [[30, 1], [35, 1], [35, 4]]), "description": "small", "flags": {"sleeping": True}},
    ])
    m = read_source(tmp_path, "labelme", ReadOptions()).manifest
    ann = m.annotations
    assert tuple(ann.iloc[0][["bbox_x", "bbox_y", "bbox_w", "bbox_h"]]) == (10, 5, 20, 15)
    assert len(ann) == 3
    grouped = ann.iloc[1]
    assert json.loads(grouped["segmentation"]) == [[1, 1, 5, 1, 5, 5], [20, 20, 25, 20, 25, 28]]
    assert tuple(grouped[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]]) == (1, 1, 24, 27)
    assert json.loads(grouped["attributes"]) == {"group_id": 3}
    assert json.loads(ann.iloc[2]["attributes"]) == {"description": "small", "flags": {"sleeping": True}}


def test_a_polygon_counts_its_own_pixels_not_its_box(tmp_path: Path) -> None:
    """COCO's area of a polygon is its rasterized pixels: a right triangle is about half its box."""
    labelme_file(tmp_path, [shape("tri", [[0, 0], [30, 0], [0, 30]]), shape("box", [[5, 5], [15, 9]], "rectangle"),
                            shape("both", [[20, 20], [30, 20], [30, 28]], group=1),
                            shape("both", [[1, 20], [4, 24]], "rectangle", group=1)])
    from pycocotools import mask as mask_utils

    ann = read_source(tmp_path, "labelme", ReadOptions()).manifest.annotations.set_index("category")
    triangle = mask_utils.frPyObjects([[0, 0, 30, 0, 0, 30]], 30, 40)
    assert ann.loc["tri", "area"] == float(mask_utils.area(triangle)[0]) and 430 < ann.loc["tri", "area"] < 500
    assert ann.loc["box", "area"] == 40  # a rectangle is its box
    assert ann.loc["both", "area"] == ann.loc["both", "bbox_w"] * ann.loc["both", "bbox_h"]  # a rectangle among its parts


def test_an_image_only_embedded_in_image_data_is_named(tmp_path: Path) -> None:
    labelme_file(tmp_path, [shape("cat", [[1, 1], [5, 5]], "rectangle")], image="gone.jpg")
    (tmp_path / "gone.jpg").unlink()
    data = json.loads((tmp_path / "a.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps({**data, "imageData": "/9j/4AAQSkZJRg=="}))
    result = read_source(tmp_path, "labelme", ReadOptions())
    assert result.manifest.images["status"].tolist() == ["missing"]
    assert "only embedded in imageData" in result.report.changed[0]["reason"]


def test_shapes_to_labelme_and_back(tmp_path: Path) -> None:
    shapes = shapes_set(tmp_path / "shapes", count=8)
    ingest(shapes, tmp_path / "m", show_progress=False)
    written = export(tmp_path / "m", "labelme", tmp_path / "lm")
    # RLE masks become polygons; whatever that loses is reported, never silent
    assert all("mask to polygon" in e["reason"] for e in written.report.lossy)
    data = json.loads(next((tmp_path / "lm").rglob("*.json")).read_text())
    assert data["imageData"] is None and data["shapes"][0]["shape_type"] == "polygon"
    back = read_source(tmp_path / "lm", None, ReadOptions()).manifest
    original = load_manifest(tmp_path / "m")
    assert sorted(back.annotations["category"]) == sorted(original.annotations["category"])
    assert set(back.images["path"]) == {p.split("/", 1)[1] for p in original.images["path"]}
    # boxes of polygons traced through pixel centres stay within a pixel of the mask boxes
    def boxes(m, strip: bool):
        merged = m.annotations.merge(m.images[["id", "path"]], left_on="image_id", right_on="id")
        merged["file"] = merged["path"].str.split("/", n=1).str[1] if strip else merged["path"]
        cols = ["file", "category", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]
        return merged.sort_values(cols)[cols].reset_index(drop=True)

    a, b = boxes(original, True), boxes(back, False)
    assert a[["file", "category"]].values.tolist() == b[["file", "category"]].values.tolist()
    np.testing.assert_allclose(a.iloc[:, 2:].to_numpy(float), b.iloc[:, 2:].to_numpy(float), atol=1.0)


# ---------------------------------------------------------------------------------------------
# bad input


def test_polygons_with_fewer_than_3_points_and_unsupported_shapes(tmp_path: Path) -> None:
    labelme_file(tmp_path, [shape("cat", [[1, 1], [5, 1]]), shape("dog", [[1, 1], [5, 5]], "circle"),
                            shape("dog", [[1, 1], [5, 1], [5, 5]])])
    with pytest.raises(DatakitError, match=r"^a.json: shapes\[0\] \(cat\): polygon has 2 point\(s\); a polygon needs at least 3"):
        read_source(tmp_path, "labelme", ReadOptions(on_invalid="fail"))
    result = read_source(tmp_path, "labelme", ReadOptions())
    assert result.report.skipped == [
        {"path": "a.json", "reason": "shapes[0] (cat): polygon has 2 point(s); a polygon needs at least 3"},
        {"path": "a.json", "reason": "shapes[1] (dog): shape_type 'circle' is not supported (rectangle and polygon are)"},
    ]
    assert list(result.manifest.annotations["category"]) == ["dog"]


def test_image_path_leaving_the_data_set_is_refused(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "secret.jpg")
    labelme_file(tmp_path / "set", [shape("cat", [[1, 1], [5, 1], [5, 5]])], image="../secret.jpg")
    labelme_file(tmp_path / "set", [shape("cat", [[1, 1], [5, 1], [5, 5]])], image="b.jpg", name="b.json")
    result = read_source(tmp_path / "set", "labelme", ReadOptions())
    assert result.report.skipped == [{"path": "a.json", "reason": "imagePath: '../secret.jpg' leaves the data set folder; refused, not read"}]
    assert list(result.manifest.images["path"]) == ["b.jpg"]


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    labelme_file(tmp_path, [])
    (tmp_path / "b.json").write_text('{\n "shapes": [],\n "imagePath": "a.jpg"\n "imageHeight": 30}')
    with pytest.raises(DatakitError, match=r"^b.json: line 4, column 2: invalid JSON \(Expecting ',' delimiter\)$"):
        read_source(tmp_path, "labelme", ReadOptions())


def test_images_sharing_a_stem_each_keep_their_json(tmp_path: Path) -> None:
    """images/a.jpg and images/a.png once both became a.json, one overwriting the other."""
    back = exported_and_read_back(two_image_coco(tmp_path / "src"), "labelme", tmp_path / "labelme")
    assert boxes_by_file_name(back) == [("a.jpg", 1, 1), ("a.png", 10, 10)]


def test_a_truncated_json_fails_and_an_image_without_json_is_kept_and_named(tmp_path: Path) -> None:
    """A JSON cut inside its shapes lacked 'imagePath' in its text and was passed over with its image;
    an image without a JSON was dropped: 10 of 12 images, nothing listed."""
    square = [[2, 2], [20, 2], [20, 20], [2, 20]]
    labelme_file(tmp_path, [shape("cat", square)], image="a.jpg", name="a.json")
    labelme_file(tmp_path, [shape("dog", square)] * 40, image="b.jpg", name="b.json")
    write_jpeg(tmp_path / "sub" / "c.jpg", width=40, height=30)  # nobody annotated it: no JSON
    cut = tmp_path / "b.json"
    text = cut.read_text()
    cut.write_text(text[: len(text) // 3])
    with pytest.raises(DatakitError, match=r"^b\.json: line \d+, column \d+: invalid JSON"):
        read_source(tmp_path, "labelme", ReadOptions())
    cut.unlink()
    result = read_source(tmp_path, "labelme", ReadOptions())
    assert sorted(result.manifest.images["path"]) == ["a.jpg", "b.jpg", "sub/c.jpg"]
    assert result.manifest.annotations["category"].tolist() == ["cat"]
    kept = {e["path"]: e["reason"] for e in result.report.changed}
    assert set(kept) == {"b.jpg", "sub/c.jpg"} and "no LabelMe JSON" in kept["b.jpg"]
