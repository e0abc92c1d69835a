"""Real-world layouts that used to be read as plain images with no word, and round trips of
datakit's own exports that must come back silent and exact (issue 11)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from datakit.convert import convert, export
from datakit.ingest import ingest
from datakit.manifest import load_manifest
from tests.conftest import write_png
from tests.formats_data import shapes_set


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shapes data set (COCO RLE instances, class and instance masks) and its manifest beside it."""
    root = tmp_path_factory.mktemp("layouts")
    shapes_set(root / "shapes", count=8)
    ingest(root / "shapes", root / "shapes.manifest", show_progress=False)
    return root / "shapes.manifest"


def _quiet(report) -> bool:
    return all(n == 0 for n in report.as_dict()["counts"].values())


def _objects(manifest: Path) -> dict[str, int]:
    return load_manifest(manifest).annotations["category"].value_counts().sort_index().to_dict()


def test_yolo_darknet_folders_with_obj_names_and_no_config(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "yolo"
    export(shapes, "yolo", out)
    darknet = tmp_path / "darknet"
    names = [c["name"] for c in sorted(load_manifest(shapes).categories, key=lambda c: c["id"])
             if c["name"] != "background"]
    for kind in ("images", "labels"):  # images/<split>/ and labels/<split>/, as darknet users lay them out
        files = sorted(p for p in (out / kind).rglob("*") if p.is_file())
        for i, path in enumerate(files):
            split = "train" if i % 4 else "val"
            target = darknet / kind / split / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    (darknet / "obj.names").write_text("\n".join(names) + "\n")
    result = ingest(darknet, tmp_path / "d.manifest", show_progress=False)
    assert result.format == "yolo" and _quiet(result.report)
    m = load_manifest(tmp_path / "d.manifest")
    assert set(m.images["split"].dropna()) == {"train", "val"} and m.images["split"].notna().all()
    assert _objects(tmp_path / "d.manifest") == _objects(shapes)


def test_yolo_export_of_an_unsplit_set_comes_back_unsplit_and_silent(shapes: Path, tmp_path: Path) -> None:
    assert load_manifest(shapes).images["split"].isna().all()
    export(shapes, "yolo", tmp_path / "yolo")
    result = ingest(tmp_path / "yolo", tmp_path / "back.manifest", show_progress=False)
    assert _quiet(result.report)
    back = load_manifest(tmp_path / "back.manifest")
    assert back.images["split"].isna().all()  # not every image in train
    assert _objects(tmp_path / "back.manifest") == _objects(shapes)


def test_converting_our_own_voc_export_back_is_silent(shapes: Path, tmp_path: Path) -> None:
    written = export(shapes, "voc", tmp_path / "voc")
    assert _quiet(written.report)
    for target in ("coco", "voc", "yolo"):
        result = convert(tmp_path / "voc", target, tmp_path / f"from-voc-{target}", show_progress=False)
        written = result.written.report
        assert _quiet(result.read.report) and not written.changed and not written.lossy, (target, result.as_dict())
        # YOLO's 0-based class indices are a real id change, and that stays printed (never silent)
        assert not written.remapped if target != "yolo" else {r["category"] for r in written.remapped} == {
            "circle", "square", "triangle", "star"}


def test_voc_segmentation_only_export_reads_the_object_maps(shapes: Path, tmp_path: Path) -> None:
    export(shapes, "voc", tmp_path / "voc")
    shutil.rmtree(tmp_path / "voc" / "Annotations")
    result = ingest(tmp_path / "voc", tmp_path / "seg.manifest", show_progress=False)
    assert result.format == "voc" and _quiet(result.report)
    assert _objects(tmp_path / "seg.manifest") == _objects(shapes)
    assert load_manifest(tmp_path / "seg.manifest").images["semantic_mask"].notna().all()


def test_labelme_voc_export_layout_png_folders_and_class_names(shapes: Path, tmp_path: Path) -> None:
    """LabelMe's labelme2voc: .npy arrays in SegmentationClass/, the PNGs in SegmentationClassPNG/,
    and class_names.txt starting with _background_."""
    voc = tmp_path / "voc"
    export(shapes, "voc", voc)
    shutil.rmtree(voc / "Annotations")
    for kind in ("Class", "Object"):
        (voc / f"Segmentation{kind}").rename(voc / f"Segmentation{kind}PNG")
        (voc / f"Segmentation{kind}").mkdir()
        for png in (voc / f"Segmentation{kind}PNG").glob("*.png"):
            (voc / f"Segmentation{kind}" / f"{png.stem}.npy").write_bytes(b"\x93NUMPY")
    labelmap = (voc / "labelmap.txt").read_text().splitlines()[1:]
    (voc / "labelmap.txt").unlink()
    names = ["_background_" if line.split(":")[0] == "background" else line.split(":")[0] for line in labelmap]
    (voc / "class_names.txt").write_text("\n".join(names) + "\n")
    result = ingest(voc, tmp_path / "lm.manifest", show_progress=False)
    assert result.format == "voc"
    assert _objects(tmp_path / "lm.manifest") == _objects(shapes)
    m = load_manifest(tmp_path / "lm.manifest")
    assert m.images["semantic_mask"].str.startswith("SegmentationClassPNG/").all()


def test_labelme_ignore_and_background_are_not_classes(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    write_png(src / "a.png", 20, 10)
    shapes = [
        {"label": "cat", "points": [[1, 1], [8, 6]], "shape_type": "rectangle"},
        {"label": "__ignore__", "points": [[10, 1], [18, 1], [18, 8]], "shape_type": "polygon"},
        {"label": "_background_", "points": [[0, 0], [19, 9]], "shape_type": "rectangle"},
    ]
    (src / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "a.png", "imageWidth": 20, "imageHeight": 10}))
    result = ingest(src, tmp_path / "m", show_progress=False)
    m = load_manifest(tmp_path / "m")
    assert m.category_names == ["cat"] and m.annotations["category"].tolist() == ["cat"]
    reasons = " ".join(c["reason"] for c in result.report.changed)
    assert "__ignore__ marks a region to ignore" in reasons and "_background_ is LabelMe's background" in reasons


@pytest.mark.parametrize("layout, closest", [("yolo", "yolo"), ("xml", "voc"), ("coco", "coco"), ("masks", "masks")])
def test_annotation_files_no_reader_claims_are_named(tmp_path: Path, layout: str, closest: str) -> None:
    src = tmp_path / "src"
    for name in ("a", "b"):
        write_png(src / "cat" / f"{name}.png", 8, 8)
    if layout == "yolo":
        (src / "cat" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    elif layout == "xml":
        (src / "cat" / "a.xml").write_text("<annotation><object><name>cat</name></object></annotation>")
    elif layout == "coco":
        (src / "cat" / "extra").mkdir()
        (src / "cat" / "extra" / "labels.json").write_text(json.dumps({"categories": [], "images": []}))
    else:
        write_png(src / "masks" / "a.png", 8, 8, mode="L")
    result = ingest(src, tmp_path / "m", show_progress=False)
    hints = [s for s in result.skipped if "closest format" in s["reason"]]
    assert len(hints) == 1 and f"closest format: {closest}" in hints[0]["reason"]
    assert "no objects" in hints[0]["reason"]


def test_a_plain_image_folder_gets_no_hint(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_png(tmp_path / "src" / "cat" / f"{name}.png", 8, 8)
    (tmp_path / "src" / "README.txt").write_text("cats")
    result = ingest(tmp_path / "src", tmp_path / "m", show_progress=False)
    assert not [s for s in result.skipped if "closest format" in s["reason"]]
