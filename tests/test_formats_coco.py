"""COCO: round trips on generated and real data, pycocotools loads and scores every export, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datakit import export, ingest, load_manifest
from datakit.convert import read_source
from datakit.errors import DatakitError
from datakit.formats.base import ReadOptions
from tests.conftest import write_png
from tests.formats_data import coco_by_name, mixed_coco, segmentation_mask, shapes_set, shared, tiny_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    return mixed_coco(shapes_set(root / "shapes"), root / "mixed")


@pytest.fixture(scope="module")
def mixed_export(mixed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mixed COCO -> saved manifest -> COCO."""
    root = tmp_path_factory.mktemp("coco_out")
    result = ingest(mixed, root / "manifest", show_progress=False, allow_outside=True)
    assert result.format == "coco" and result.report.skipped == []
    export(root / "manifest", "coco", root / "out", allow_outside=True)
    return root / "out"


def quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def assert_same_coco(source: Path, written: Path) -> None:
    """Every image, category, box (1e-6 px), polygon and decoded mask pixel of source is in written."""
    src_images, src_anns, src_cats = coco_by_name(source)
    out_images, out_anns, out_cats = coco_by_name(written)
    strip = lambda cats: sorted((c["id"], c["name"], c.get("supercategory", "")) for c in cats)  # noqa: E731
    assert strip(out_cats) == strip(src_cats)
    assert set(out_images) == set(src_images)
    for name, image in src_images.items():
        assert (out_images[name]["width"], out_images[name]["height"]) == (image["width"], image["height"])
        assert out_images[name]["id"] == image["id"]  # predictions keyed by image id still match
        ours = {a["id"]: a for a in out_anns[name]}
        assert sorted(ours) == sorted(a["id"] for a in src_anns[name])
        for ann in src_anns[name]:
            got = ours[ann["id"]]
            np.testing.assert_allclose(got["bbox"], ann["bbox"], atol=1e-6, rtol=0)
            assert (got["category_id"], got["iscrowd"], got["area"]) == (ann["category_id"], ann["iscrowd"], ann["area"])
            assert got.get("attributes") == ann.get("attributes")
            seg = ann["segmentation"]
            if isinstance(seg, list):
                assert got["segmentation"] == seg  # polygons exactly, part by part
            else:
                h, w = image["height"], image["width"]
                np.testing.assert_array_equal(segmentation_mask(got["segmentation"], h, w), segmentation_mask(seg, h, w))


def test_mixed_coco_round_trip_keeps_everything(mixed: Path, mixed_export: Path) -> None:
    source = mixed / "annotations" / "instances_train.json"
    written = mixed_export / "annotations" / "instances_train.json"
    data = json.loads(source.read_text())
    kinds = {("poly" if isinstance(a["segmentation"], list) else type(a["segmentation"]["counts"]).__name__)
             for a in data["annotations"]}
    assert kinds == {"poly", "str", "list"}  # the fixture really has every kind
    assert_same_coco(source, written)
    images, anns, _ = coco_by_name(written)
    assert sum(1 for name in images if not anns[name]) == 1  # the image without annotations is kept
    assert all((mixed_export / "images" / "train" / name).is_file() for name in images)


def test_manifest_stores_names_and_the_one_convention(mixed: Path, tmp_path: Path) -> None:
    ingest(mixed, tmp_path / "m", show_progress=False)
    m = load_manifest(tmp_path / "m")
    assert [(c["id"], c["name"], c["supercategory"]) for c in m.categories] == [
        (3, "circle", "round"), (7, "square", "angular"), (11, "triangle", "angular"), (42, "star", "angular")]
    assert set(m.annotations["category"]) <= set(m.category_names)
    assert set(m.annotations["segmentation_kind"].dropna()) == {"polygon", "rle"}
    rle = json.loads(m.annotations.loc[m.annotations["segmentation_kind"] == "rle", "segmentation"].iloc[0])
    assert set(rle) == {"size", "counts"} and isinstance(rle["counts"], str)
    assert set(m.images["split"]) == {"train"} and m.tasks == ["detection", "instance_segmentation"]


def test_export_loads_in_pycocotools_and_scores_ap_1_against_itself(mixed_export: Path) -> None:
    gt = quiet_coco(mixed_export / "annotations" / "instances_train.json")
    for iou_type in ("bbox", "segm"):
        detections = []
        for ann in gt.dataset["annotations"]:
            if ann["iscrowd"]:
                continue  # crowd regions are ignored by COCOeval, never detected
            det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
            if iou_type == "bbox":
                det["bbox"] = ann["bbox"]
            else:
                det["segmentation"] = gt.annToRLE(ann)
                det["segmentation"]["counts"] = det["segmentation"]["counts"].decode() if isinstance(
                    det["segmentation"]["counts"], bytes) else det["segmentation"]["counts"]
            detections.append(det)
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(detections)
            evaluator = COCOeval(gt, dt, iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        assert evaluator.stats[0] == pytest.approx(1.0), iou_type


def test_shared_datumaro_coco_round_trip(tmp_path: Path) -> None:
    src = shared("datumaro/coco_instances")
    result = read_source(src, None, ReadOptions())
    assert result.format == "coco"
    m = result.manifest
    assert [(c["id"], c["name"]) for c in m.categories] == [(1, "a"), (2, "b"), (4, "c")]
    assert dict(zip(m.images["path"], m.images["split"])) == {"images/train/a.jpg": "train", "images/val/b.jpg": "val"}
    export(m, "coco", tmp_path / "out")
    for split in ("train", "val"):
        written = tmp_path / "out" / "annotations" / f"instances_{split}.json"
        assert_same_coco(src / "annotations" / f"instances_{split}.json", written)
        quiet_coco(written)
    val = json.loads((tmp_path / "out" / "annotations" / "instances_val.json").read_text())
    assert val["annotations"][0]["attributes"] == {"x": 1, "y": "hello"}
    train = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert train["annotations"][0]["segmentation"] == []  # box-only stays box-only


def test_colliding_ids_across_files_are_prefixed_and_written_back() -> None:
    m = read_source(shared("datumaro/coco_instances"), None, ReadOptions()).manifest
    assert sorted(m.annotations["id"]) == ["train:1", "val:1", "val:2"]


def test_a_single_json_file_and_detection(mixed: Path, tmp_path: Path) -> None:
    result = ingest(mixed / "annotations" / "instances_train.json", tmp_path / "m", show_progress=False)
    assert result.format == "coco" and result.status_counts == {"ok": 12}
    m = load_manifest(tmp_path / "m")
    assert m.image_path(m.images["path"].iloc[0]).is_file()


# ---------------------------------------------------------------------------------------------
# bad input: one clear line naming file and position, or a reported, counted skip


def box_ann(**fields) -> dict:
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 2], "area": 6, "iscrowd": 0, **fields}


def read(path: Path, policy: str = "clip"):
    return read_source(path, "coco", ReadOptions(on_invalid=policy))


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_text('{"images": [\n  {"id": 1,, "file_name": "a.png"}\n]}')
    with pytest.raises(DatakitError, match=r"^annotations/instances.json: line 2, column 12: invalid JSON \(Expecting"):
        read(tmp_path)


def test_structure_errors_name_the_entry(tmp_path: Path) -> None:
    tiny_coco(tmp_path, [], images=[{"id": 1, "width": 8, "height": 6}])
    with pytest.raises(DatakitError, match=r"instances.json: images\[0\]: needs 'id' and a string 'file_name'"):
        read(tmp_path)
    tiny_coco(tmp_path, [], categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "a"}])
    with pytest.raises(DatakitError, match=r"categories\[1\]: name 'a' is used twice; categories are matched by name"):
        read(tmp_path)


def test_unknown_category_and_missing_image_ids(tmp_path: Path) -> None:
    tiny_coco(tmp_path, [box_ann(id=42, category_id=9), box_ann(id=43, image_id=77), box_ann(id=44)])
    with pytest.raises(DatakitError, match=r"^annotations/instances.json: annotations\[0\] \(id 42\): unknown category id 9 "
                                           r"\(use --on-invalid clip or skip to continue\)$"):
        read(tmp_path, "fail")
    result = read(tmp_path)
    assert list(result.manifest.annotations["id"]) == ["44"]
    assert [s["reason"] for s in result.report.skipped] == [
        "annotations[0] (id 42): unknown category id 9",
        "annotations[1] (id 43): image id 77 is not in 'images'",
    ]


def test_missing_image_file_is_a_counted_missing_row(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}, {"id": 2, "file_name": "gone.png", "width": 8, "height": 6}]
    tiny_coco(tmp_path, [box_ann(), box_ann(id=2, image_id=2)], images=images)
    (tmp_path / "images" / "gone.png").unlink()
    result = ingest(tmp_path, tmp_path / "m", show_progress=False)
    assert result.status_counts == {"missing": 1, "ok": 1}
    assert result.broken[0]["path"] == "images/gone.png" and "file not found" in result.broken[0]["reason"]
    m = load_manifest(tmp_path / "m")
    gone = m.images[m.images["path"] == "images/gone.png"].iloc[0]
    assert (gone["width"], gone["height"]) == (8, 6)  # the declared size, so its boxes still check
    assert len(m.annotations) == 2


@pytest.mark.parametrize("policy", ["clip", "skip", "fail"])
def test_boxes_outside_or_empty_follow_the_policy(tmp_path: Path, policy: str) -> None:
    tiny_coco(tmp_path, [box_ann(id=1, bbox=[6, 4, 5, 5]), box_ann(id=2, bbox=[1, 1, 0, 3]), box_ann(id=3, bbox=[1, 1, -2, 3]),
                         box_ann(id=4, bbox=[20, 20, 2, 2]), box_ann(id=5)])
    if policy == "fail":
        with pytest.raises(DatakitError, match=r"annotations\[1\] \(id 2\): box \[1, 1, 0, 3\] has zero or negative size"):
            read(tmp_path, policy)
        return
    result = read(tmp_path, policy)
    ann = result.manifest.annotations.set_index("id")
    reasons = [s["reason"] for s in result.report.skipped]
    assert "annotations[1] (id 2): box [1, 1, 0, 3] has zero or negative size" in reasons
    assert "annotations[2] (id 3): box [1, 1, -2, 3] has zero or negative size" in reasons
    if policy == "clip":
        assert tuple(ann.loc["1", ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]]) == (6, 4, 2, 2)
        assert result.report.changed[0]["reason"] == ("annotations[0] (id 1): box [6, 4, 5, 5] extends outside the 8x6 image; "
                                                      "clipped to [6, 4, 2, 2]")
        assert "annotations[3] (id 4): box [20, 20, 2, 2] extends outside the 8x6 image and nothing is left inside it" in reasons
        assert sorted(ann.index) == ["1", "5"]
    else:
        assert sorted(ann.index) == ["5"] and len(reasons) == 4


def test_polygons_with_fewer_than_3_points(tmp_path: Path) -> None:
    seg = [[1, 1, 3, 1], [1, 1, 4, 1, 4, 4]]
    tiny_coco(tmp_path, [box_ann(segmentation=seg)])
    with pytest.raises(DatakitError, match=r"annotations\[0\] \(id 1\): polygon part 0 has 2 point\(s\); a polygon needs at least 3"):
        read(tmp_path, "fail")
    result = read(tmp_path)
    assert json.loads(result.manifest.annotations["segmentation"].iloc[0]) == [[1, 1, 4, 1, 4, 4]]
    assert result.report.skipped[0]["reason"].endswith("polygon part 0 has 2 point(s); a polygon needs at least 3; part dropped")
    assert len(read(tmp_path, "skip").manifest.annotations) == 0


def test_rle_whose_size_disagrees_with_the_image(tmp_path: Path) -> None:
    rle = {"size": [5, 10], "counts": [0, 50]}
    tiny_coco(tmp_path, [box_ann(segmentation=rle, iscrowd=1)])
    with pytest.raises(DatakitError, match=r"annotations\[0\] \(id 1\): RLE size \[5, 10\] disagrees with the 8x6 image"):
        read(tmp_path, "fail")
    result = read(tmp_path)
    assert len(result.manifest.annotations) == 0 and len(result.report.skipped) == 1


def test_compressed_rle_that_cannot_be_decoded_is_refused(tmp_path: Path) -> None:
    """pycocotools reads a bad counts string into a garbage area and only fails later, on decode."""
    from pycocotools import mask as mask_utils

    good = mask_utils.encode(np.asfortranarray(np.pad(np.ones((2, 3), np.uint8), ((2, 2), (3, 2)))))
    cut = good["counts"].decode()[:-1] + "a"  # 'a' sets "more follows" on the last run: it is cut off
    tiny_coco(tmp_path, [box_ann(id=1, segmentation={"size": [6, 8], "counts": "garbage!!"}, iscrowd=1),
                         box_ann(id=2, segmentation={"size": [6, 8], "counts": "0"}, iscrowd=1),
                         box_ann(id=3, segmentation={"size": [6, 8], "counts": cut}, iscrowd=1),
                         box_ann(id=4, segmentation={"size": [6, 8], "counts": good["counts"].decode()}, iscrowd=1)])
    with pytest.raises(DatakitError, match=r"annotations\[0\] \(id 1\): compressed RLE counts are not valid"):
        read(tmp_path, "fail")
    result = read(tmp_path)
    reasons = [s["reason"] for s in result.report.skipped]
    assert reasons[1] == "annotations[1] (id 2): compressed RLE counts cover 0 pixels, not height*width = 48"
    assert reasons[2].startswith("annotations[2] (id 3): compressed RLE counts are not valid")
    kept = result.manifest.annotations
    assert list(kept["id"]) == ["4"] and kept["area"].iloc[0] == 6


def test_a_clipped_box_keeps_no_area_outside_the_image(tmp_path: Path) -> None:
    tiny_coco(tmp_path, [box_ann(id=1, bbox=[6, 4, 5, 5], area=25)])  # an 8x6 image: 2x2 of the box is inside
    ann = read(tmp_path).manifest.annotations.iloc[0]
    assert (ann["bbox_w"], ann["bbox_h"], ann["area"]) == (2, 2, 4)


def test_reingest_reports_category_ids_that_moved(tmp_path: Path) -> None:
    """The COCO file's ids replace the manifest's: a name that moved, or an id that now names
    another class, is listed, so nothing keyed by the old ids is silently wrong."""
    src = tmp_path / "src"
    cats = [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}, {"id": 3, "name": "three"}]
    tiny_coco(src, [box_ann(id=i, category_id=i) for i in (1, 2, 3)], categories=cats)
    first = ingest(src, tmp_path / "m", show_progress=False)
    assert first.report.remapped == []
    cats = [{"id": 1, "name": "one"}, {"id": 3, "name": "new"}, {"id": 5, "name": "three"}]
    tiny_coco(src, [box_ann(id=1, category_id=1), box_ann(id=2, category_id=3), box_ann(id=3, category_id=5)],
              categories=cats)
    again = ingest(src, tmp_path / "m", show_progress=False)
    assert load_manifest(tmp_path / "m").category_ids() == {"one": 1, "new": 3, "three": 5}
    moved = {(r["category"], r["from"], r["to"]) for r in again.report.remapped}
    assert moved == {("three", 3, 5), ("new", None, 3)}
    assert "named 'three'" in next(r["where"] for r in again.report.remapped if r["category"] == "new")


def test_a_missing_image_declared_huge_keeps_no_size(tmp_path: Path) -> None:
    """The pixel limit of a file applies to a declared size too (a mask export painted it)."""
    images = [{"id": 1, "file_name": "a.png", "width": 8, "height": 6},
              {"id": 2, "file_name": "gone.png", "width": 10 ** 9, "height": 10 ** 9}]
    tiny_coco(tmp_path / "src", [box_ann(), box_ann(id=2, image_id=2, bbox=[1, 1, 5, 5])], images=images,
              write_images=False)
    write_png(tmp_path / "src" / "images" / "a.png", width=8, height=6)
    result = ingest(tmp_path / "src", tmp_path / "m", show_progress=False)
    assert any("declared size 1000000000x1000000000" in c["reason"] for c in result.report.changed)
    gone = load_manifest(tmp_path / "m").images.set_index("path").loc["images/gone.png"]
    assert gone["status"] == "missing" and pd.isna(gone["width"])
    written = export(tmp_path / "m", "masks", tmp_path / "masks", include_broken=True)
    assert written.images >= 1


@pytest.mark.parametrize("name", ["../../outside.png", "/etc/passwd", "sub/../../../outside.png"])
def test_file_names_leaving_the_data_set_are_refused_and_never_read(tmp_path: Path, name: str, monkeypatch) -> None:
    import datakit.imageinfo

    opened: list[str] = []
    real = datakit.imageinfo.inspect_file
    monkeypatch.setattr(datakit.imageinfo, "inspect_file", lambda path, *a: opened.append(path) or real(path, *a))
    root = tmp_path / "set"
    images = [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}, {"id": 2, "file_name": name, "width": 8, "height": 6}]
    tiny_coco(root, [box_ann(), box_ann(id=2, image_id=2)], images=images)
    result = read(root)
    assert list(result.manifest.images["path"]) == ["images/a.png"]
    assert result.report.skipped[0]["reason"].startswith(f"images[1] (id 2): file_name {name!r} ")
    assert result.report.skipped[0]["reason"].endswith("; refused, not read")
    assert result.report.skipped[1]["reason"] == "1 annotation(s) of refused images skipped"
    assert all(Path(p).name == "a.png" for p in opened) and opened


def test_export_refuses_a_non_empty_folder(mixed: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    m = read_source(mixed, None, ReadOptions()).manifest
    with pytest.raises(DatakitError, match=r"out: exists and is not an empty folder; choose a new output folder"):
        export(m, "coco", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_source_image_ids_are_kept_or_renumbered_with_a_report(mixed: Path, tmp_path: Path) -> None:
    from datakit import load_manifest

    ingest(mixed, tmp_path / "m", show_progress=False)
    m = load_manifest(tmp_path / "m")
    source = json.loads((mixed / "annotations" / "instances_train.json").read_text())
    assert set(m.images["source_id"].dropna()) >= {str(im["id"]) for im in source["images"]}
    m.images["source_id"] = "7"  # every image claims the same id: unusable
    result = export(m, "coco", tmp_path / "out", images="none")
    written = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert sorted(im["id"] for im in written["images"]) == list(range(1, len(written["images"]) + 1))
    assert any("image ids renumbered" in c["reason"] for c in result.report.changed)
    quiet_coco(tmp_path / "out" / "annotations" / "instances_train.json")
