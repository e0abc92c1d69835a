"""Contract over the whole format registry: every format writes the shipped objects manifest,
detects its own output, reads it back with the same images and categories (and the same objects
where it holds boxes), and never writes outside its output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit.convert import export
from datakit.errors import DatakitError
from datakit.formats import DETECT_ORDER, REGISTRY, detect_format, get_format, read_source
from datakit.formats.base import ReadOptions
from datakit.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
OBJECTS = ROOT / "sample_manifests" / "shapes-mini" / "objects.manifest"
# formats whose files hold one box per object, so a round trip keeps the object count
BOX_FORMATS = {"coco", "voc", "yolo", "labelme"}


@pytest.fixture(scope="module")
def source():
    return load_manifest(OBJECTS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_write_detect_read_round_trip(name: str, source, tmp_path: Path) -> None:
    module = get_format(name)
    assert module.NAME == name
    out = tmp_path / name
    # an objects manifest has no image labels: imagefolder files each object's crop under its category
    crops = name == "imagefolder"
    written = export(OBJECTS, name, out, crop_objects=crops)
    assert written.output == out and out.is_dir()
    # nothing written outside the output folder, no staging folder left next to it
    assert [p.name for p in tmp_path.iterdir()] == [name]
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
    if name in DETECT_ORDER:
        assert module.detect(out) and detect_format(out) == name
    back = read_source(out, name, ReadOptions(show_progress=False)).manifest
    usable = source.images[source.images["status"] == "ok"]
    assert len(back.images) == (len(source.annotations) if crops else len(usable))
    assert (back.images["status"] == "ok").all()
    # VOC and mask PNGs add the background class their label maps reserve
    assert set(back.category_names) - {"background", "_background_"} <= set(source.category_names)
    if name in BOX_FORMATS:
        assert len(back.annotations) == len(source.annotations)
        assert sorted(back.annotations["category"]) == sorted(source.annotations["category"])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_refuses_a_non_empty_output_and_reads_nothing_from_an_empty_folder(name: str, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(DatakitError, match="exists and is not an empty folder"):
        export(OBJECTS, name, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    if name in DETECT_ORDER:
        assert not get_format(name).detect(empty)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_labels_and_splits_are_written_or_reported_lost(name: str, source, tmp_path: Path) -> None:
    """COCO and mask folders dropped image labels, mask folders and LabelMe every split, without a
    word; what the read-back lacks must be listed as not representable."""
    manifest = load_manifest(OBJECTS)  # a copy of its own: the images table is changed below
    ok = manifest.images["status"] == "ok"
    order = manifest.images.index[ok]
    manifest.images.loc[order, "split"] = ["train" if i % 3 else "val" for i in range(len(order))]
    manifest.images.loc[order, "label"] = [manifest.category_names[i % 2] for i in range(len(order))]
    written = export(manifest, name, tmp_path / name)
    back = read_source(tmp_path / name, name, ReadOptions(show_progress=False)).manifest
    lost = " | ".join(entry["reason"] for entry in written.report.lossy)
    for column, says in (("label", "image-level labels are not part of"), ("split", "splits (train/val/test) are not part of")):
        kept = back.images[column].notna().any()
        assert kept != (says in lost), f"{name}: {column} kept={kept}, report: {lost or 'nothing lost'}"
