"""YOLO: COCO -> YOLO -> COCO keeps boxes within YOLO's rounding; darknet and Ultralytics layouts; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from datakit import convert, export, ingest, load_manifest
from datakit.convert import read_source
from datakit.errors import DatakitError
from datakit.formats.base import ReadOptions
from tests.conftest import write_png
from tests.formats_data import coco_by_name, exported_and_read_back, mixed_coco, shapes_set, shared, two_image_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")


def test_coco_to_yolo_to_coco_keeps_boxes_within_rounding(tmp_path: Path) -> None:
    source = mixed_coco(shapes_set(tmp_path / "shapes"), tmp_path / "mixed")
    result = convert(source, "yolo", tmp_path / "yolo", show_progress=False)
    # crowd regions have no YOLO form: left out, and said so
    crowd = [e for e in result.written.report.lossy if "iscrowd=1" in e["reason"]]
    assert crowd
    config = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert config["names"] == {0: "circle", 1: "square", 2: "triangle", 3: "star"} and config["train"] == "images/train"
    assert [(r["category"], r["from"], r["to"]) for r in result.written.report.remapped] == [
        ("circle", 3, 0), ("square", 7, 1), ("triangle", 11, 2), ("star", 42, 3)]
    convert(tmp_path / "yolo", "coco", tmp_path / "back", show_progress=False)
    src_images, src_anns, _ = coco_by_name(source / "annotations" / "instances_train.json")
    out_images, out_anns, out_cats = coco_by_name(tmp_path / "back" / "annotations" / "instances_train.json")
    assert set(out_images) == set(src_images)
    src_names = {c["id"]: c["name"] for c in coco_by_name(source / "annotations" / "instances_train.json")[2]}
    out_names = {c["id"]: c["name"] for c in out_cats}
    for name, image in src_images.items():
        side = max(image["width"], image["height"])
        expected = sorted((src_names[a["category_id"]], *a["bbox"]) for a in src_anns[name] if not a["iscrowd"])
        got = sorted((out_names[a["category_id"]], *a["bbox"]) for a in out_anns[name])
        assert [e[0] for e in expected] == [g[0] for g in got]
        # 6 decimals of a normalized value: each coordinate is off by at most 1e-6 of the image side
        np.testing.assert_allclose([e[1:] for e in expected] or np.zeros((0, 4)), [g[1:] for g in got] or np.zeros((0, 4)),
                                   atol=1e-6 * side, rtol=0)


def test_shared_darknet_yolo_tree() -> None:
    result = read_source(shared("datumaro/yolo"), None, ReadOptions())
    assert result.format == "yolo"
    m = result.manifest
    assert m.category_names == [f"label_{i}" for i in range(10)]
    assert list(m.images["path"]) == ["obj_train_data/1.jpg"] and list(m.images["split"]) == ["train"]
    boxes = m.annotations[["category", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy().tolist()
    # 15x10 image: "2 0.133333 0.300000 0.266667 0.200000" -> x = (0.133333 - 0.266667/2) * 15 ...
    assert [b[0] for b in boxes] == ["label_2", "label_4"]
    np.testing.assert_allclose([b[1:] for b in boxes], [[0, 2, 4, 2], [3, 3, 2, 3]], atol=2e-5)
    # a 7.5e-6 px overshoot from 6-decimal rounding is clipped without a report
    assert result.report.changed == [] and result.report.skipped == []


def test_segment_task_writes_polygons_and_reads_them_back(tmp_path: Path) -> None:
    shapes = shapes_set(tmp_path / "shapes", count=6)
    ingest(shapes, tmp_path / "m", show_progress=False)
    written = export(tmp_path / "m", "yolo", tmp_path / "yolo", yolo_task="segment")
    line = next(p for p in (tmp_path / "yolo" / "labels").rglob("*.txt") if p.read_text()).read_text().splitlines()[0]
    assert len(line.split()) >= 7 and len(line.split()) % 2 == 1
    m = read_source(tmp_path / "yolo", None, ReadOptions()).manifest
    original = load_manifest(tmp_path / "m")
    assert len(m.annotations) == len(original.annotations) == written.annotations
    assert set(m.annotations["segmentation_kind"]) == {"polygon"}
    assert sorted(m.annotations["category"]) == sorted(original.annotations["category"])


# ---------------------------------------------------------------------------------------------
# bad input


def yolo_tree(root: Path, labels: str, config: str = "names: [cat, dog]\ntrain: images/train\n") -> Path:
    write_png(root / "images" / "train" / "a.png", width=10, height=10)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train" / "a.txt").write_text(labels)
    (root / "data.yaml").write_text(config)
    return root


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    yolo_tree(tmp_path, "", config="names: [cat, dog\ntrain: images/train\n")
    with pytest.raises(DatakitError, match=r"^data.yaml: line 2, column 6: malformed YAML \(expected ',' or '\]', but got ':'\)$"):
        read_source(tmp_path, "yolo", ReadOptions())


def test_bad_label_lines_are_named_by_file_and_line(tmp_path: Path) -> None:
    yolo_tree(tmp_path, "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n1 0.5 0.5\n1 0.5 zero 0.2 0.2\n0 0.9 0.5 0.4 0.2\n0 0.5 0.5 0 0.2\n"
                        "1.0 0.5 0.5 0.2 0.2\n1.5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DatakitError, match=r"^labels/train/a.txt: line 2: unknown category id 7 \(names has 2 classes\)"):
        read_source(tmp_path, "yolo", ReadOptions(on_invalid="fail"))
    result = read_source(tmp_path, "yolo", ReadOptions())
    assert [s["reason"] for s in result.report.skipped] == [
        "line 2: unknown category id 7 (names has 2 classes)",
        "line 3: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', found 3 values",
        "line 4: expected numbers, found '1 0.5 zero 0.2 0.2'",
        "line 8: the class id must be a whole number, found '1.5'",
        "line 6: box [5, 4, 0, 2] has zero or negative size",
    ]
    assert result.report.changed == [{"path": "labels/train/a.txt",
                                      "reason": "line 5: box [7, 4, 4, 2] extends outside the 10x10 image; clipped to [7, 4, 3, 2]"}]
    assert len(result.manifest.annotations) == 3  # "1.0" is class 1, as Ultralytics reads it


def test_paths_leaving_the_data_set_are_refused(tmp_path: Path) -> None:
    root = yolo_tree(tmp_path / "set", "0 0.5 0.5 0.2 0.2\n", config="names: [cat]\ntrain: images/train\nval: ../../elsewhere\ntest: /etc\n")
    result = read_source(root, "yolo", ReadOptions())
    reasons = sorted(s["reason"] for s in result.report.skipped)
    assert reasons == ["path '../../elsewhere' leaves the data set folder; refused, not read",
                       "path '/etc' is absolute; refused, not read"]
    assert list(result.manifest.images["path"]) == ["images/train/a.png"]


def test_labels_of_a_missing_image_are_reported(tmp_path: Path) -> None:
    root = yolo_tree(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (root / "train.txt").write_text("images/train/a.png\nimages/train/gone.png\n")
    (root / "labels" / "train" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: {0: cat}\ntrain: train.txt\n")
    result = read_source(root, "yolo", ReadOptions())
    statuses = dict(zip(result.manifest.images["path"], result.manifest.images["status"]))
    assert statuses == {"images/train/a.png": "ok", "images/train/gone.png": "missing"}
    assert result.report.skipped == [{"path": "labels/train/gone.txt", "reason":
                                      "image size unknown (file missing or unreadable); its normalized objects cannot be placed"}]


def test_images_sharing_a_stem_each_keep_their_label_file(tmp_path: Path) -> None:
    """a.jpg and a.png in one folder would share labels/a.txt (labels are found by image stem)."""
    back = exported_and_read_back(two_image_coco(tmp_path / "src"), "yolo", tmp_path / "yolo")
    assert len(back.images) == 2
    assert sorted(back.annotations["bbox_x"].round(3)) == [1, 10]
    from datakit import export
    from datakit.convert import read_source as read_any

    written = export(read_any(tmp_path / "src", None, ReadOptions()).manifest, "yolo", tmp_path / "again")
    assert sorted(c["reason"].split(":")[0] for c in written.report.changed) == [
        "written as images/a.jpg.jpg", "written as images/a.png.png"]


def test_a_label_file_without_its_image_is_reported(tmp_path: Path) -> None:
    """labels/train/b.txt with no images/train/b.* was dropped without a word."""
    root = yolo_tree(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "train" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.2 0.2\n")
    result = read_source(root, "yolo", ReadOptions())
    assert result.report.skipped == [{"path": "labels/train/b.txt",
                                      "reason": "no image images/train/b.* for this label file; its 2 object(s) not read"}]
    assert len(result.manifest.annotations) == 1
    with pytest.raises(DatakitError, match=r"^labels/train/b.txt: no image images/train/b.\* for this label file"):
        read_source(root, "yolo", ReadOptions(on_invalid="fail"))


def test_an_image_folder_data_yaml_does_not_list_is_named(tmp_path: Path) -> None:
    """Deleting 'test:' from data.yaml made images/test/* vanish from the manifest, nothing reported."""
    m = load_manifest(Path(__file__).resolve().parent.parent / "sample_manifests" / "shapes-mini" / "objects.manifest")
    ok = m.images.index[m.images["status"] == "ok"]
    m.images.loc[ok, "split"] = [("train", "val", "test")[i % 3] for i in range(len(ok))]
    export(m, "yolo", tmp_path / "yolo")
    config_file = tmp_path / "yolo" / "data.yaml"
    config = yaml.safe_load(config_file.read_text())
    assert config.pop("test") == "images/test"
    config_file.write_text(yaml.safe_dump(config))
    result = read_source(tmp_path / "yolo", "yolo", ReadOptions())
    in_test = sum(p.is_file() for p in (tmp_path / "yolo" / "images" / "test").rglob("*"))
    assert len(result.manifest.images) == len(ok) - in_test
    (unlisted,) = [s for s in result.report.skipped if s["path"] == "images/test"]
    assert unlisted["reason"].startswith(f"{in_test} image(s) in a folder data.yaml does not list: not read")
    assert not [s for s in result.report.skipped if s["path"] in ("labels", "labels/test")]
