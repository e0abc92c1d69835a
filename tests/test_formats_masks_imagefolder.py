"""Mask PNG folders (semantic and instance) and ImageFolder, including per-object crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datakit import convert, export, ingest, load_manifest
from datakit.convert import read_source
from datakit.errors import DatakitError
from datakit.formats.base import ReadOptions
from tests.conftest import write_png
from tests.formats_data import boxes_by_file_name, exported_and_read_back, shapes_set, two_image_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_set(tmp_path_factory.mktemp("masks") / "shapes", classes_txt=True)


def test_mask_folders_round_trip_pixel_for_pixel(shapes: Path, tmp_path: Path) -> None:
    result = ingest(shapes, tmp_path / "m", format="masks", show_progress=False)
    assert result.report.skipped == [] and result.annotations > 12
    m = load_manifest(tmp_path / "m")
    assert [(c["id"], c["name"]) for c in m.categories] == [(1, "circle"), (2, "square"), (3, "triangle"), (4, "star")]
    assert set(m.annotations["segmentation_kind"]) == {"mask_file"}
    export(tmp_path / "m", "masks", tmp_path / "out")
    for kind in ("semantic", "instance"):
        files = sorted((shapes / "masks" / kind).glob("*.png"))
        assert len(files) == 12
        for source in files:
            np.testing.assert_array_equal(pixels(tmp_path / "out" / "masks" / kind / source.name), pixels(source))
    assert (tmp_path / "out" / "classes.txt").read_text() == "1 circle\n2 square\n3 triangle\n4 star\n"


def test_mask_objects_agree_with_the_coco_instances(shapes: Path) -> None:
    """The masks reader and the COCO reader see the same objects in the same sample."""
    masks = read_source(shapes, "masks", ReadOptions()).manifest
    coco = read_source(shapes, "coco", ReadOptions()).manifest

    def objects(m):
        cols = ["image_id", "category", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area"]
        return sorted(map(tuple, m.annotations[cols].astype(object).to_numpy().tolist()))

    assert objects(masks) == objects(coco)


def test_coco_to_masks_paints_the_same_class_map(shapes: Path, tmp_path: Path) -> None:
    convert(shapes, "masks", tmp_path / "out", format="coco", show_progress=False)
    for source in sorted((shapes / "masks" / "semantic").glob("*.png")):
        np.testing.assert_array_equal(pixels(tmp_path / "out" / "masks" / "semantic" / source.name), pixels(source))
        original = pixels(shapes / "masks" / "instance" / source.name)
        painted = pixels(tmp_path / "out" / "masks" / "instance" / source.name)
        # instance ids are renumbered 1..n in object order, the partition of pixels is the same
        pairs = {(int(a), int(b)) for a, b in zip(original.reshape(-1), painted.reshape(-1))}
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_a_crowd_region_written_as_an_instance_is_reported(tmp_path: Path) -> None:
    from tests.formats_data import tiny_coco

    rle = {"size": [6, 8], "counts": [10, 4, 34]}  # uncompressed: 4 pixels set
    tiny_coco(tmp_path / "src", [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4,
                                  "iscrowd": 1, "segmentation": rle}])
    written = export(read_source(tmp_path / "src", "coco", ReadOptions()).manifest, "masks", tmp_path / "out")
    assert any("iscrowd=1 has no mask-folder equivalent" in entry["reason"] for entry in written.report.lossy)


def test_mask_folder_without_classes_txt_names_values(tmp_path: Path) -> None:
    shapes = shapes_set(tmp_path / "s", count=4)
    (shapes / "classes.txt").unlink()  # `datakit sample shapes` writes one; this test is about its absence
    m = read_source(shapes, "masks", ReadOptions()).manifest
    assert set(m.category_names) <= {"class_1", "class_2", "class_3", "class_4"}


def test_unknown_class_value_is_reported(tmp_path: Path) -> None:
    shapes = shapes_set(tmp_path / "s", count=4)
    (shapes / "classes.txt").write_text("1 circle\n")
    with pytest.raises(DatakitError, match=r"masks/semantic/shapes_0000\d.png: class value\(s\) \[\d(, \d)*\] are not in classes.txt"):
        read_source(shapes, "masks", ReadOptions(on_invalid="fail"))


# ---------------------------------------------------------------------------------------------
# ImageFolder


def test_imagefolder_export_and_read_keep_labels_and_splits(shapes: Path, tmp_path: Path) -> None:
    ingest(shapes / "images", tmp_path / "m", show_progress=False)  # class folders: the folder ingest
    m = load_manifest(tmp_path / "m")
    m.images["split"] = ["train" if i % 3 else "val" for i in range(len(m.images))]
    result = export(m, "imagefolder", tmp_path / "out")
    assert result.images == 12
    back = read_source(tmp_path / "out", "imagefolder", ReadOptions()).manifest
    expected = sorted(zip(m.images["split"], m.images["label"], m.images["path"].str.rsplit("/", n=1).str[-1]))
    got = sorted(zip(back.images["split"], back.images["label"], back.images["path"].str.rsplit("/", n=1).str[-1]))
    assert got == expected


def test_crop_objects_turns_detection_into_classification(shapes: Path, tmp_path: Path) -> None:
    ingest(shapes, tmp_path / "m", show_progress=False)
    m = load_manifest(tmp_path / "m")
    result = export(tmp_path / "m", "imagefolder", tmp_path / "crops", crop_objects=True)
    assert result.annotations == len(m.annotations) and result.images == 12
    crops = sorted((tmp_path / "crops").rglob("*.png"))
    assert len(crops) == len(m.annotations)
    counts = {}
    for crop in crops:
        counts[crop.parent.name] = counts.get(crop.parent.name, 0) + 1
    assert counts == m.annotations["category"].value_counts().to_dict()
    # each crop is its box: integer pixel bounds around x, y, w, h
    first = m.annotations.iloc[0]
    image = m.images.set_index("id").loc[first["image_id"], "path"]
    stem = Path(image).stem
    crop = pixels(next(p for p in crops if p.name == f"{stem}_1.png"))
    full = np.array(Image.open(m.image_path(image)).convert("RGB"))
    x, y, w, h = (int(first[c]) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    np.testing.assert_array_equal(crop, full[y:y + h, x:x + w])
    classified = ingest(tmp_path / "crops", tmp_path / "m2", show_progress=False)
    assert classified.layout == "classes" and classified.label_counts == counts


def test_crop_objects_needs_imagefolder(shapes: Path, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match="--crop-objects writes an ImageFolder data set: use it with --format imagefolder"):
        export(read_source(shapes, "coco", ReadOptions()).manifest, "coco", tmp_path / "x", crop_objects=True)


@pytest.mark.parametrize("names", [("x/a.jpg", "y/a.jpg"), ("a.jpg", "a.png")], ids=["sub-folders", "suffixes"])
def test_masks_of_images_sharing_a_stem_read_back(names: tuple[str, str], tmp_path: Path) -> None:
    """The writer once named these masks images__x__a.png, a name the reader did not look for."""
    back = exported_and_read_back(two_image_coco(tmp_path / "src", names), "masks", tmp_path / "masks")
    assert boxes_by_file_name(back) == [("a.jpg", 1, 1), (names[1].rsplit("/")[-1], 10, 10)]


def test_a_mask_two_images_could_own_is_reported_and_not_used(tmp_path: Path) -> None:
    """masks/instance/a.png fits images/a.jpg by path and images/sub/a.jpg by stem: both once got its object."""
    for name in ("a.jpg", "sub/a.jpg"):
        write_png(tmp_path / "images" / name, width=30, height=20)
    objects = np.zeros((20, 30), dtype=np.uint8)
    objects[2:8, 2:8] = 1
    (tmp_path / "masks" / "instance").mkdir(parents=True)
    Image.fromarray(objects).save(tmp_path / "masks" / "instance" / "a.png")
    result = read_source(tmp_path, "masks", ReadOptions())
    assert len(result.manifest.annotations) == 0
    assert result.report.skipped == [{"path": "masks/instance/a.png", "reason": "its name fits 2 images "
                                      "(images/a.jpg, images/sub/a.jpg); ambiguous, mask not used"}]


@pytest.mark.parametrize("kind", ["semantic", "instance"])
def test_a_mask_of_another_size_is_refused(kind: str, tmp_path: Path) -> None:
    """A 10x10 mask of a 60x40 image was taken for the image's size ('declared size 10x10 but the file is 60x40')."""
    write_png(tmp_path / "images" / "a.png", width=60, height=40)
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2:5, 2:5] = 1
    (tmp_path / "masks" / kind).mkdir(parents=True)
    Image.fromarray(mask).save(tmp_path / "masks" / kind / "a.png")
    reason = {"path": f"masks/{kind}/a.png", "reason": "mask is 10x10 but its image images/a.png is 60x40; mask not used"}
    result = read_source(tmp_path, "masks", ReadOptions())
    assert result.report.skipped == [reason] and result.report.changed == []
    m = result.manifest
    assert (m.images["width"].tolist(), m.images["height"].tolist()) == ([60], [40])
    assert m.images["semantic_mask"].isna().all() and len(m.annotations) == 0
    with pytest.raises(DatakitError, match=f"^masks/{kind}/a.png: mask is 10x10 but its image images/a.png is 60x40"):
        read_source(tmp_path, "masks", ReadOptions(on_invalid="fail"))
