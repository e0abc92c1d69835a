"""Folder layouts, per-image facts and incremental re-ingest, on real files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

import datakit
from datakit import load_manifest
from datakit.errors import DatakitError
from datakit.ingest import ingest
from tests.conftest import write_jpeg, write_png


def by_path(manifest_dir: Path) -> dict[str, dict]:
    return {r["path"]: r for r in load_manifest(manifest_dir).images.to_dict("records")}


def test_class_folders_give_labels_and_facts(class_folder: Path, tmp_path: Path) -> None:
    result = ingest(class_folder, tmp_path / "m", show_progress=False)
    assert result.layout == "classes"
    assert result.status_counts == {"ok": 6}
    m = load_manifest(tmp_path / "m")
    assert m.category_names == ["cat", "dog"]
    assert [c["id"] for c in m.categories] == [0, 1]
    rows = by_path(tmp_path / "m")
    cat0 = rows["cat/cat_0.jpg"]
    data = (class_folder / "cat" / "cat_0.jpg").read_bytes()
    assert cat0["sha256"] == hashlib.sha256(data).hexdigest()
    assert cat0["file_size"] == len(data)
    assert (cat0["width"], cat0["height"], cat0["channels"], cat0["format"], cat0["label"]) == (32, 24, 3, "JPEG", "cat")
    assert rows["dog/dog_1.png"]["format"] == "PNG" and rows["dog/dog_1.png"]["label"] == "dog"
    assert m.image_path("cat/cat_0.jpg").read_bytes() == data


def test_an_image_beside_the_class_folders_is_kept_unlabeled_and_hidden_files_are_named(class_folder: Path,
                                                                                          tmp_path: Path) -> None:
    """root.jpg was listed as "skipped or refused" yet kept as an unlabeled row; .hidden.jpg vanished."""
    write_png(class_folder / "root.png")
    write_png(class_folder / "cat" / ".hidden.png")
    result = ingest(class_folder, tmp_path / "m", show_progress=False, strict=True)  # neither fails --strict
    assert result.kept_unlabeled == [{"path": "root.png",
                                      "reason": "at the top level of a class-folder layout: kept without a label"}]
    assert pd.isna(by_path(tmp_path / "m")["root.png"]["label"])
    assert {"path": "cat/.hidden.png", "reason": "hidden file (its name starts with '.'): not read"} in result.skipped


def test_split_folders_record_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_jpeg(src / "train" / "a" / "1.jpg")
    write_jpeg(src / "train" / "b" / "2.jpg")
    write_jpeg(src / "validation" / "a" / "3.jpg")
    write_jpeg(src / "test" / "b" / "4.jpg")
    result = ingest(src, tmp_path / "m", show_progress=False)
    assert result.layout == "splits"
    rows = by_path(tmp_path / "m")
    assert {p: (r["split"], r["label"]) for p, r in rows.items()} == {
        "train/a/1.jpg": ("train", "a"),
        "train/b/2.jpg": ("train", "b"),
        "validation/a/3.jpg": ("val", "a"),
        "test/b/4.jpg": ("test", "b"),
    }


def test_flat_folder_with_labels_csv(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    for name in ("x.jpg", "y.jpg", "z.png"):
        (write_jpeg if name.endswith("jpg") else write_png)(src / name)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,split\nx.jpg,cat,train\ny.jpg,dog,test\nghost.jpg,cat,train\n")
    result = ingest(src, tmp_path / "m", labels=csv, show_progress=False)
    assert result.layout == "flat"
    rows = by_path(tmp_path / "m")
    assert rows["x.jpg"]["label"] == "cat" and rows["x.jpg"]["split"] == "train"
    assert rows["y.jpg"]["label"] == "dog" and rows["y.jpg"]["split"] == "test"
    assert pd.isna(rows["z.png"]["label"])
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "not found" in reasons["ghost.jpg"] and "line 4" in reasons["ghost.jpg"]
    assert "not listed" in reasons["z.png"]


def test_unlabeled_folder(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    write_jpeg(src / "a.jpg")
    write_png(src / "b.png")
    result = ingest(src, tmp_path / "m", show_progress=False)
    assert result.layout == "unlabeled"
    m = load_manifest(tmp_path / "m")
    assert m.categories == [] and m.images["label"].isna().all() and len(m.images) == 2


def test_parallel_and_sequential_agree(tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(80):
        write_jpeg(src / f"c{i % 2}" / f"{i}.jpg", seed=i)
    ingest(src, tmp_path / "seq", workers=1, show_progress=False)
    ingest(src, tmp_path / "par", workers=2, show_progress=False)
    seq, par = load_manifest(tmp_path / "seq").images, load_manifest(tmp_path / "par").images
    assert seq.equals(par)


def test_incremental_reads_only_new_or_changed_and_keeps_ids(class_folder: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "m"
    ingest(class_folder, out, show_progress=False)
    first = by_path(out)
    write_jpeg(class_folder / "cat" / "cat_new.jpg", seed=99)          # new
    changed = class_folder / "dog" / "dog_0.png"
    write_png(changed, width=50, height=40, seed=123)                  # changed size and content
    os.utime(changed, ns=(1, 1))
    (class_folder / "cat" / "cat_2.jpg").unlink()                      # deleted

    read: list[str] = []
    import datakit.imageinfo as imageinfo
    real = imageinfo.inspect_file
    monkeypatch.setattr(imageinfo, "inspect_file", lambda p, v="structure", *more: (read.append(p), real(p, v, *more))[1])
    result = ingest(class_folder, out, workers=1, show_progress=False)
    assert sorted(Path(p).name for p in read) == ["cat_new.jpg", "dog_0.png"]
    assert result.new == ["cat/cat_new.jpg"] and result.changed == ["dog/dog_0.png"]
    assert result.deleted == ["cat/cat_2.jpg"] and result.unchanged == 4
    second = by_path(out)
    assert "cat/cat_2.jpg" not in second
    for path in ("cat/cat_0.jpg", "dog/dog_0.png", "dog/dog_2.png"):
        assert second[path]["id"] == first[path]["id"]
    assert (second["dog/dog_0.png"]["width"], second["dog/dog_0.png"]["height"]) == (50, 40)


def test_a_touched_file_with_the_same_content_keeps_its_split_and_counts_unchanged(class_folder: Path,
                                                                                    tmp_path: Path) -> None:
    out = tmp_path / "m"
    ingest(class_folder, out, show_progress=False)
    datakit.split(out, seed=0)
    splits = {p: row["split"] for p, row in by_path(out).items()}
    os.utime(class_folder / "cat" / "cat_0.jpg", ns=(5, 5))   # a copy or checkout: new mtime, same bytes
    result = ingest(class_folder, out, workers=1, show_progress=False)
    assert (result.changed, result.unchanged) == ([], 6)
    assert {p: row["split"] for p, row in by_path(out).items()} == splits


def test_category_ids_stay_stable_when_a_class_is_added(class_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    ingest(class_folder, out, show_progress=False)
    write_jpeg(class_folder / "aardvark" / "a.jpg")
    ingest(class_folder, out, show_progress=False)
    ids = load_manifest(out).category_ids()
    assert ids == {"cat": 0, "dog": 1, "aardvark": 2}


def test_a_deleted_or_renamed_class_folder_leaves_no_empty_category_and_ids_are_never_reused(
        class_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    write_png(class_folder / "bird" / "b.png", seed=40)
    write_png(class_folder / "fish" / "f.png", seed=41)
    ingest(class_folder, out, show_progress=False)
    assert load_manifest(out).category_ids() == {"bird": 0, "cat": 1, "dog": 2, "fish": 3}
    (class_folder / "bird").rename(class_folder / "parrot")
    (class_folder / "fish" / "f.png").unlink()
    (class_folder / "fish").rmdir()
    result = ingest(class_folder, out, show_progress=False)
    assert result.categories_dropped == [{"id": 0, "name": "bird"}, {"id": 3, "name": "fish"}]
    assert result.as_dict()["categories_dropped"] == result.categories_dropped
    assert load_manifest(out).category_ids() == {"cat": 1, "dog": 2, "parrot": 4}
    balance = datakit.balance_report(out, sections=["balance"], workers=1, show_progress=False).sections["balance"]
    assert balance["missing"] == [] and balance["imbalance"] == 3.0
    write_png(class_folder / "fish" / "f.png", seed=41)        # a class that comes back gets its id back,
    write_png(class_folder / "zebra" / "z.png", seed=42)       # a new one an id no class had
    ingest(class_folder, out, show_progress=False)
    assert load_manifest(out).category_ids() == {"cat": 1, "dog": 2, "fish": 3, "parrot": 4, "zebra": 5}


def test_symlink_outside_source_is_refused(class_folder: Path, tmp_path: Path) -> None:
    outside = write_jpeg(tmp_path / "elsewhere" / "secret.jpg")
    (class_folder / "cat" / "link.jpg").symlink_to(outside)
    (class_folder / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    result = ingest(class_folder, tmp_path / "m", show_progress=False)
    refused = {s["path"]: s["reason"] for s in result.skipped}
    assert "outside the source" in refused["cat/link.jpg"]
    assert "outside the source" in refused["linkdir"]
    assert "cat/link.jpg" not in by_path(tmp_path / "m")
    allowed = ingest(class_folder, tmp_path / "m2", allow_outside=True, show_progress=False)
    assert "cat/link.jpg" in by_path(tmp_path / "m2") and allowed.status_counts["ok"] == 7


def test_inside_symlink_is_kept(class_folder: Path, tmp_path: Path) -> None:
    (class_folder / "cat" / "alias.jpg").symlink_to(class_folder / "dog" / "dog_0.png")
    ingest(class_folder, tmp_path / "m", show_progress=False)
    assert by_path(tmp_path / "m")["cat/alias.jpg"]["status"] == "ok"


def test_other_source_into_same_manifest_is_refused(class_folder: Path, tmp_path: Path) -> None:
    ingest(class_folder, tmp_path / "m", show_progress=False)
    other = tmp_path / "other"
    write_jpeg(other / "a" / "1.jpg")
    with pytest.raises(DatakitError, match="was made from"):
        ingest(other, tmp_path / "m", show_progress=False)
    ingest(other, tmp_path / "m", incremental=False, show_progress=False)
    assert list(by_path(tmp_path / "m")) == ["a/1.jpg"]


@pytest.mark.parametrize("table_format", ["csv", "jsonl"])
def test_text_table_formats(class_folder: Path, tmp_path: Path, table_format: str) -> None:
    ingest(class_folder, tmp_path / "m", table_format=table_format, show_progress=False)
    assert (tmp_path / "m" / f"images.{table_format}").is_file()
    assert len(load_manifest(tmp_path / "m").images) == 6
