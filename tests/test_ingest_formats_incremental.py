"""Re-ingesting an annotation format into its manifest: incremental as the folder ingest is."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

import datakit
from datakit import load_manifest
from datakit.ingest import ingest
from datakit.manifest import save_manifest
from tests.conftest import write_png
from tests.formats_data import shapes_set


def _splits(manifest: Path) -> dict[str, object]:
    images = load_manifest(manifest).images
    return dict(zip(images["path"], images["split"].astype(object).where(images["split"].notna(), None)))


@pytest.fixture
def split_coco(tmp_path: Path) -> tuple[Path, Path]:
    """A shapes set ingested from its COCO file and split; every image has a group a user set."""
    src = shapes_set(tmp_path / "s", count=8)
    out = tmp_path / "s.objects"
    ingest(src, out, workers=1, show_progress=False)
    datakit.split(out, seed=0)
    manifest = load_manifest(out)
    manifest.images["group"] = manifest.images["path"].str.slice(-6, -4)
    save_manifest(manifest, out)
    return src, out


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import datakit.imageinfo as imageinfo

    read: list[str] = []
    real = imageinfo.inspect_file
    monkeypatch.setattr(imageinfo, "inspect_file", lambda p, *more: (read.append(Path(p).name), real(p, *more))[1])
    return read


def test_reingesting_coco_keeps_the_splits_of_unchanged_images_and_reads_only_changed_ones(
        split_coco: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = split_coco
    before = load_manifest(out)
    splits = _splits(out)
    assert all(splits.values())
    coco_file = src / "annotations" / "instances.json"
    coco = json.loads(coco_file.read_text())
    paths = sorted(splits)
    edited, dropped = paths[0], paths[1]
    write_png(src / edited, width=48, height=48, seed=77)       # new content
    os.utime(src / edited, ns=(1, 1))
    gone = next(im["id"] for im in coco["images"] if dropped.endswith(im["file_name"]))
    coco["images"] = [im for im in coco["images"] if im["id"] != gone]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != gone][1:]  # one object deleted too
    coco_file.write_text(json.dumps(coco))

    read = _record_reads(monkeypatch)
    result = ingest(src, out, workers=1, show_progress=False)

    assert read == [Path(edited).name]  # the unchanged images are not read (nor hashed) again
    assert (result.new, result.changed, result.deleted, result.unchanged) == ([], [edited], [dropped], 6)
    assert result.as_dict()["incremental"]["unchanged"] == 6
    after = load_manifest(out)
    kept = _splits(out)
    assert kept[edited] is None and dropped not in kept
    assert {p: s for p, s in kept.items() if p != edited} == {p: splits[p] for p in paths[2:]}
    groups = dict(zip(after.images["path"], after.images["group"]))
    assert all(groups[p] == p[-6:-4] for p in paths[2:])
    assert len(after.annotations) == len(coco["annotations"])  # annotations always from the re-read file
    assert after.categories == before.categories


def test_a_touched_but_unchanged_image_keeps_its_split(split_coco: tuple[Path, Path]) -> None:
    src, out = split_coco
    splits = _splits(out)
    touched = sorted(splits)[0]
    os.utime(src / touched, ns=(2, 2))  # a copy or checkout moves the mtime, not the content
    result = ingest(src, out, workers=1, show_progress=False)
    assert (result.changed, result.unchanged) == ([], 8)
    assert _splits(out) == splits
    assert load_manifest(out).images.set_index("path").loc[touched, "mtime_ns"] == 2  # not read again next time


def test_no_incremental_reads_the_format_afresh(split_coco: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = split_coco
    read = _record_reads(monkeypatch)
    result = ingest(src, out, workers=1, incremental=False, show_progress=False)
    assert len(read) == 8 and result.unchanged == 0
    assert set(_splits(out).values()) == {None}
    assert "group" not in load_manifest(out).images.columns


def test_the_split_a_format_file_gives_wins_over_the_manifests(tmp_path: Path) -> None:
    src = shapes_set(tmp_path / "s", count=8)
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    datakit.split(tmp_path / "m", seed=0)
    datakit.export(tmp_path / "m", "yolo", tmp_path / "yolo")    # images/<split>/, labels/<split>/
    out = tmp_path / "y.objects"
    ingest(tmp_path / "yolo", out, workers=1, show_progress=False)
    from_files = _splits(out)
    manifest = load_manifest(out)
    moved = manifest.images["path"].iloc[0]
    manifest.images["split"] = pd.array(["val" if s == "train" else "train" for s in manifest.images["split"]],
                                        dtype="string")
    save_manifest(manifest, out)
    result = ingest(tmp_path / "yolo", out, workers=1, show_progress=False)
    assert result.unchanged == 8
    assert _splits(out) == from_files and from_files[moved] is not None


def test_a_category_the_annotation_file_no_longer_declares_is_named(split_coco: tuple[Path, Path]) -> None:
    src, out = split_coco
    coco_file = src / "annotations" / "instances.json"
    coco = json.loads(coco_file.read_text())
    star = next(c for c in coco["categories"] if c["name"] == "star")
    coco["categories"] = [c for c in coco["categories"] if c is not star]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != star["id"]]
    coco_file.write_text(json.dumps(coco))
    result = ingest(src, out, workers=1, show_progress=False)
    assert [(c["id"], c["name"]) for c in result.categories_dropped] == [(star["id"], "star")]
    assert "star" not in load_manifest(out).category_names


def test_a_reingest_with_stricter_checks_checks_the_unchanged_files_again(tmp_path: Path) -> None:
    """Unchanged files were reused as they stood, so `--verify decode` never decoded them and a lower
    `--max-pixels` never refused them; their splits still survive the new check."""
    import datakit

    data = datakit.sample("shapes", tmp_path / "s", count=8, show_progress=False)
    victim = sorted(data.image_folder.rglob("*.png"))[0]
    raw = bytearray(victim.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(64)  # pixels damaged, the end of the file intact: structure passes
    victim.write_bytes(bytes(raw))
    first = datakit.ingest(data.image_folder, tmp_path / "m", show_progress=False)
    assert first.status_counts == {"ok": 8}
    datakit.split(tmp_path / "m", seed=0)
    decoded = datakit.ingest(data.image_folder, tmp_path / "m", verify="decode", show_progress=False)
    assert decoded.status_counts == {"corrupt": 1, "ok": 7}
    kept = datakit.load_manifest(tmp_path / "m").images
    assert kept.loc[kept["status"] == "ok", "split"].notna().all()
    small = datakit.ingest(data.image_folder, tmp_path / "m", verify="decode", max_pixels=100, show_progress=False)
    assert small.status_counts == {"too_large": 8}  # the pixel limit is checked before decoding
