"""Pascal VOC: 1-based boxes, attributes, split lists, and class/object PNGs identical after a round trip."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datakit import export, ingest, load_manifest
from datakit.convert import read_source
from datakit.errors import DatakitError
from datakit.formats.base import ReadOptions
from tests.conftest import write_jpeg
from tests.formats_data import exported_and_read_back, shapes_set, shared, two_image_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def boxes(xml: Path) -> list[tuple[str, list[float]]]:
    root = ET.parse(xml).getroot()
    return [(o.findtext("name"), [float(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")])
            for o in root.findall("object")]


def test_datumaro_voc_reads_boxes_attributes_splits_and_masks() -> None:
    result = read_source(shared("datumaro/voc"), None, ReadOptions())
    assert result.format == "voc"
    m = result.manifest
    images = m.images.set_index("path")
    assert images.loc["JPEGImages/2007_000001.jpg", "split"] == "train"
    assert images.loc["JPEGImages/2007_000002.jpg", "split"] == "test"
    assert images.loc["JPEGImages/2007_000001.jpg", "semantic_mask"] == "SegmentationClass/2007_000001.png"
    ann = m.annotations.set_index("category")
    # xmin=1, xmax=3 are 1-based inclusive pixel indices: columns 0..2, so x=0, w=3
    assert tuple(ann.loc["cat", ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]]) == (0, 1, 3, 3)
    cat = json.loads(ann.loc["cat", "attributes"])
    assert cat == {"truncated": True, "difficult": False, "pose": "Unspecified"}
    person = json.loads(ann.loc["person", "attributes"])
    assert person["parts"] == [{"name": "head", "bbox": [4.5, 5.0, 3.0, 3.0]}]
    assert person["actions"]["jumping"] is False and person["actions"]["phoning"] is True
    assert json.loads(ann.loc["cat", "segmentation"]) == {"path": "SegmentationObject/2007_000001.png", "value": 1}
    assert m.category_ids()["background"] == 0 and m.category_ids()["tvmonitor"] == 20
    assert set(m.tasks) == {"detection", "instance_segmentation", "semantic_segmentation"}


def test_voc_masks_round_trip_to_identical_pixels(tmp_path: Path) -> None:
    src = shared("datumaro/voc")
    ingest(src, tmp_path / "m", format="voc", show_progress=False)
    export(tmp_path / "m", "voc", tmp_path / "out")
    for folder in ("SegmentationClass", "SegmentationObject"):
        np.testing.assert_array_equal(rgb(tmp_path / "out" / folder / "2007_000001.png"), rgb(src / folder / "2007_000001.png"))
    assert boxes(tmp_path / "out" / "Annotations" / "2007_000001.xml") == boxes(src / "Annotations" / "2007_000001.xml")
    assert (tmp_path / "out" / "ImageSets" / "Main" / "train.txt").read_text() == "2007_000001\n"
    assert (tmp_path / "out" / "ImageSets" / "Main" / "test.txt").read_text() == "2007_000002\n"
    again = read_source(tmp_path / "out", None, ReadOptions()).manifest
    first = load_manifest(tmp_path / "m")
    cols = ["category", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]
    assert again.annotations[cols].equals(first.annotations[cols])
    for before, after in zip(first.annotations["attributes"], again.annotations["attributes"]):
        # VOC always has truncated/difficult/pose, so the writer fills in the defaults
        after = json.loads(after)
        assert {k: after[k] for k in json.loads(before)} == json.loads(before)


def test_generated_masks_survive_coco_to_voc_to_voc(tmp_path: Path) -> None:
    shapes = shapes_set(tmp_path / "shapes")
    ingest(shapes, tmp_path / "m", show_progress=False)  # detected: COCO with RLE masks
    export(tmp_path / "m", "voc", tmp_path / "voc1")
    ingest(tmp_path / "voc1", tmp_path / "m2", show_progress=False)
    export(tmp_path / "m2", "voc", tmp_path / "voc2")
    names = sorted(p.name for p in (tmp_path / "voc1" / "SegmentationClass").glob("*.png"))
    assert len(names) == 12
    for folder in ("SegmentationClass", "SegmentationObject"):
        for name in names:
            with Image.open(tmp_path / "voc1" / folder / name) as a, Image.open(tmp_path / "voc2" / folder / name) as b:
                assert a.mode == b.mode == "P" and a.getpalette() == b.getpalette()
                np.testing.assert_array_equal(np.array(a), np.array(b))
    # the class map holds the shapes' own class ids (circle 1 .. star 4), as the sample's masks do
    for name in names:
        with Image.open(tmp_path / "voc1" / "SegmentationClass" / name) as a, Image.open(shapes / "masks" / "semantic" / name) as s:
            np.testing.assert_array_equal(np.array(a), np.array(s))
    for xml in (tmp_path / "voc1" / "Annotations").glob("*.xml"):
        assert boxes(xml) == boxes(tmp_path / "voc2" / "Annotations" / xml.name)


def test_labelme_converter_output_agrees_with_labelme_boxes() -> None:
    """labelme's own VOC converter writes 0-based corners; read that way, every box agrees."""
    from datakit.convert import read_source as read

    voc = read(shared("labelme/bbox_voc"), "voc", ReadOptions(voc_one_based=False)).manifest
    labelme = read(shared("labelme/bbox_labelme"), "labelme", ReadOptions()).manifest
    cols = ["category", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]

    def by_file(m):
        merged = m.annotations.merge(m.images[["id", "path"]], left_on="image_id", right_on="id")
        merged["file"] = merged["path"].str.rsplit("/", n=1).str[-1]
        return merged.sort_values(["file", "bbox_x", "bbox_y"])[["file", *cols]].reset_index(drop=True)

    a, b = by_file(voc), by_file(labelme)
    assert len(a) == 9 and list(a["file"]) == list(b["file"]) and list(a["category"]) == list(b["category"])
    np.testing.assert_allclose(a[cols[1:]].to_numpy(float), b[cols[1:]].to_numpy(float), atol=1e-9)
    standard = by_file(read(shared("labelme/bbox_voc"), "voc", ReadOptions()).manifest)
    np.testing.assert_allclose(standard["bbox_x"].to_numpy(float), a["bbox_x"].to_numpy(float) - 1)
    np.testing.assert_allclose(standard["bbox_w"].to_numpy(float), a["bbox_w"].to_numpy(float) + 1)
    assert voc.category_ids()["_background_"] == 0 and voc.category_ids()["tv/monitor"] == 20


# ---------------------------------------------------------------------------------------------
# bad input


def voc_tree(root: Path, xml: str, stem: str = "x") -> Path:
    write_jpeg(root / "JPEGImages" / f"{stem}.jpg", width=20, height=10)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / f"{stem}.xml").write_text(xml)
    return root


OBJECT = "<object><name>cat</name><bndbox><xmin>{}</xmin><ymin>1</ymin><xmax>{}</xmax><ymax>5</ymax></bndbox></object>"


def annotation(*objects: str, filename: str = "x.jpg") -> str:
    return (f"<annotation><filename>{filename}</filename><size><width>20</width><height>10</height></size>"
            + "".join(objects) + "</annotation>")


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    voc_tree(tmp_path, "<annotation>\n  <filename>x.jpg</filename>\n  <size><width>20</wdth></size>\n</annotation>")
    with pytest.raises(DatakitError, match=r"^Annotations/x.xml: line 3, column 20: malformed XML \(mismatched tag\)$"):
        read_source(tmp_path, "voc", ReadOptions())


def test_boxes_outside_and_missing_coordinates(tmp_path: Path) -> None:
    bad = "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax></bndbox></object>"
    voc_tree(tmp_path, annotation(OBJECT.format(15, 25), OBJECT.format(2, 4)))
    with pytest.raises(DatakitError, match=r"Annotations/x.xml: object 1 \(cat\): box \[14, 0, 11, 5\] extends outside the 20x10 image"):
        read_source(tmp_path, "voc", ReadOptions(on_invalid="fail"))
    voc_tree(tmp_path, annotation(OBJECT.format(15, 25), bad, OBJECT.format(2, 4)))
    with pytest.raises(DatakitError, match=r"Annotations/x.xml: object 2 \(dog\): bndbox/ymax is missing or not a number"):
        read_source(tmp_path, "voc", ReadOptions(on_invalid="fail"))
    result = read_source(tmp_path, "voc", ReadOptions())
    assert result.report.skipped == [{"path": "Annotations/x.xml", "reason": "object 2 (dog): bndbox/ymax is missing or not a number"}]
    assert "clipped to [14, 0, 6, 5]" in result.report.changed[0]["reason"]
    assert list(result.manifest.annotations["bbox_w"]) == [6, 3]


def test_filename_leaving_the_data_set_is_refused(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "secret.jpg")
    voc_tree(tmp_path / "voc", annotation(OBJECT.format(2, 4), filename="../../secret.jpg"))
    result = read_source(tmp_path / "voc", "voc", ReadOptions())
    assert result.report.skipped == [{"path": "Annotations/x.xml",
                                      "reason": "<filename>: '../../secret.jpg' leaves the data set folder; refused, not read"}]
    # the image file itself is still in the data set, without the refused annotation file's objects
    assert list(result.manifest.images["path"]) == ["JPEGImages/x.jpg"] and len(result.manifest.annotations) == 0


def test_class_map_with_values_outside_the_class_list(tmp_path: Path) -> None:
    voc_tree(tmp_path, annotation(OBJECT.format(2, 4)))
    (tmp_path / "SegmentationClass").mkdir()
    Image.fromarray(np.full((10, 20), 77, dtype=np.uint8), mode="L").save(tmp_path / "SegmentationClass" / "x.png")
    with pytest.raises(DatakitError, match=r"SegmentationClass/x.png: class value\(s\) \[77\] are not in the class list"):
        read_source(tmp_path, "voc", ReadOptions(on_invalid="fail"))
    m = read_source(tmp_path, "voc", ReadOptions()).manifest
    assert m.images["semantic_mask"].isna().all()


def test_images_sharing_a_stem_each_keep_their_annotation_file(tmp_path: Path) -> None:
    """images/a.jpg and images/a.png once both became images__a.xml, one overwriting the other."""
    back = exported_and_read_back(two_image_coco(tmp_path / "src"), "voc", tmp_path / "voc")
    assert len(back.images) == 2 and len(back.annotations) == 2
    assert sorted(back.annotations["bbox_x"]) == [1, 10]


def test_flat_names_are_unique_whatever_the_paths() -> None:
    from datakit.formats.base import flat_names

    paths = ["images/a.jpg", "images/a.png", "x/b.jpg", "y/b.jpg", "a/b__c.jpg", "a__b/c.jpg", "d.jpg"]
    names = flat_names(paths)
    assert len(set(names.values())) == len(paths)
    assert names["d.jpg"] == "d" and names["x/b.jpg"] == "x__b" and names["images/a.png"] == "images__a.png"


def test_names_differing_only_in_case_stay_apart_on_case_insensitive_disks() -> None:
    """A.jpg and a.jpg became A.xml and a.xml: one file on macOS and Windows, where one image's
    objects overwrote the other's."""
    from datakit.formats.base import flat_names

    names = flat_names(["A.jpg", "a.jpg", "sub/Cat.png", "other/cat.png", "x.jpg"])
    assert len({name.casefold() for name in names.values()}) == 5
    assert names["x.jpg"] == "x" and names["sub/Cat.png"] == "sub__Cat"


@pytest.mark.parametrize("fmt", ["voc", "yolo", "labelme", "masks"])
def test_images_differing_only_in_case_export_to_distinct_files(fmt: str, tmp_path: Path) -> None:
    src = two_image_coco(tmp_path / "src", ("A.png", "a.png"))
    m = read_source(src, None, ReadOptions()).manifest
    export(m, fmt, tmp_path / fmt)
    # the names datakit makes (LabelMe and masks keep each image at its own path)
    written = [p.relative_to(tmp_path / fmt).as_posix() for p in (tmp_path / fmt).rglob("*")
               if p.is_file() and not (fmt == "labelme" and p.suffix == ".png") and not p.parent.name == "images"]
    if fmt != "masks":  # a mask is named as its image is: the images' own names decide there
        assert len({w.casefold() for w in written}) == len(written), written
    back = read_source(tmp_path / fmt, None, ReadOptions()).manifest
    assert len(back.images) == 2 and sorted(back.annotations["bbox_x"].round(3)) == [1, 10]
    if fmt == "yolo":
        assert sorted(back.images["path"]) == ["images/A.png", "images/a_2.png"]


def test_names_with_spaces_keep_their_split(tmp_path: Path) -> None:
    """'my photo' in ImageSets/Main/train.txt was read as id 'my' (a phantom missing image)."""
    m = read_source(two_image_coco(tmp_path / "src", ("my photo.jpg", "other.jpg")), None, ReadOptions()).manifest
    m.images["split"] = "train"
    export(m, "voc", tmp_path / "voc")
    assert (tmp_path / "voc" / "ImageSets" / "Main" / "train.txt").read_text() == "my_photo\nother\n"
    back = read_source(tmp_path / "voc", None, ReadOptions()).manifest
    assert sorted(back.images["path"]) == ["JPEGImages/my_photo.jpg", "JPEGImages/other.jpg"]
    assert set(back.images["split"]) == {"train"} and set(back.images["status"]) == {"ok"}


def test_split_lines_are_an_id_with_an_optional_flag(tmp_path: Path) -> None:
    for stem in ("my photo", "2008_000008"):
        voc_tree(tmp_path, annotation(OBJECT.format(2, 4), filename=f"{stem}.jpg"), stem=stem)
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("my photo\n2008_000008  1\n")
    m = read_source(tmp_path, "voc", ReadOptions()).manifest
    assert dict(zip(m.images["path"], m.images["split"])) == {"JPEGImages/2008_000008.jpg": "train",
                                                              "JPEGImages/my photo.jpg": "train"}


def test_class_and_object_maps_of_another_size_are_refused(tmp_path: Path) -> None:
    """A 5x5 map of a 20x10 image was read as it was (and its objects' masks with it)."""
    voc_tree(tmp_path, annotation(OBJECT.format(2, 4)))
    write_jpeg(tmp_path / "JPEGImages" / "y.jpg", width=20, height=10)  # known only from its maps
    small = np.zeros((5, 5), dtype=np.uint8)
    small[1:3, 1:3] = 1
    for folder in ("SegmentationClass", "SegmentationObject"):
        (tmp_path / folder).mkdir()
        for stem in ("x", "y"):
            Image.fromarray(small, mode="L").save(tmp_path / folder / f"{stem}.png")
    result = read_source(tmp_path, "voc", ReadOptions())
    assert sorted((s["path"], s["reason"]) for s in result.report.skipped) == [
        (f"{folder}/{stem}.png", f"mask is 5x5 but its image JPEGImages/{stem}.jpg is 20x10; mask not used")
        for folder in ("SegmentationClass", "SegmentationObject") for stem in ("x", "y")]
    m = result.manifest
    assert m.images["semantic_mask"].isna().all()
    # the XML object keeps its box without the mask; the object known only from y's map is gone
    assert len(m.annotations) == 1 and m.annotations["segmentation_kind"].isna().all()
    with pytest.raises(DatakitError, match=r"^SegmentationClass/x.png: mask is 5x5 but its image JPEGImages/x.jpg is 20x10"):
        read_source(tmp_path, "voc", ReadOptions(on_invalid="fail"))


def test_class_names_a_class_list_cannot_hold_are_renamed_and_reported(tmp_path: Path) -> None:
    """labelmap.txt took '#first' for a comment (every later class moved up one: the class map's
    values got the wrong names, silently) and cut 'a:b' at the colon (re-ingest failed); a mask
    folder's classes.txt dropped the space of ' lead'. Each is now written under a name that reads
    back, the same in the XML files, and reported."""
    shapes = shapes_set(tmp_path / "shapes", count=8)
    coco_file = shapes / "annotations" / "instances.json"
    coco = json.loads(coco_file.read_text())
    renamed = {"circle": "#first", "square": "dog", "triangle": "a:b", "star": " lead"}
    for category in coco["categories"]:
        category["name"] = renamed[category["name"]]
    coco_file.write_text(json.dumps(coco))
    m = read_source(shapes, "coco", ReadOptions()).manifest
    before = m.annotations["category"].value_counts().to_dict()
    ids_before = {c["name"]: c["id"] for c in m.categories}

    voc = export(m, "voc", tmp_path / "voc")
    written = {"#first": "_first", "dog": "dog", "a:b": "a_b", " lead": "lead"}
    lost = {entry["reason"].split("'")[1] for entry in voc.report.lossy if entry["path"] == "labelmap.txt"}
    assert lost == {"#first", "a:b", " lead"}
    back = read_source(tmp_path / "voc", "voc", ReadOptions()).manifest
    assert back.annotations["category"].value_counts().to_dict() == {written[k]: v for k, v in before.items()}
    # the class values of the maps keep their names: the same ids as the source, background 0
    assert {c["name"]: c["id"] for c in back.categories} == {"background": 0, **{written[k]: v for k, v in ids_before.items()}}
    for class_map in (tmp_path / "voc" / "SegmentationClass").glob("*.png"):
        with Image.open(class_map) as a:
            assert set(np.unique(np.array(a)).tolist()) <= {0, *ids_before.values(), 255}

    masks = export(m, "masks", tmp_path / "masks")
    assert [e["reason"].split("'")[1] for e in masks.report.lossy if e["path"] == "classes.txt"] == [" lead"]
    back = read_source(tmp_path / "masks", "masks", ReadOptions()).manifest
    assert {c["name"]: c["id"] for c in back.categories} == {("lead" if k == " lead" else k): v for k, v in ids_before.items()}
