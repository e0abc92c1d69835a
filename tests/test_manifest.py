"""Manifest v1: round trips in every table format, validation messages, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import datakit.manifest as manifest_module
from datakit.errors import ManifestError
from datakit.ingest import ingest
from datakit.manifest import Manifest, load_manifest, save_manifest


@pytest.fixture
def manifest_dir(class_folder: Path, tmp_path: Path) -> Path:
    ingest(class_folder, tmp_path / "m", show_progress=False)
    return tmp_path / "m"


def _with_annotations(m: Manifest) -> Manifest:
    first = m.images["id"].iloc[0]
    m.annotations = pd.DataFrame([{
        "id": "a1", "image_id": first, "category": "cat", "bbox_x": 1.5, "bbox_y": 2.0, "bbox_w": 10.25,
        "bbox_h": 4.0, "area": 41.0, "iscrowd": 0, "segmentation_kind": "polygon",
        "segmentation": json.dumps([[1.5, 2, 11.75, 2, 11.75, 6]]), "attributes": json.dumps({"occluded": True}),
    }])
    return m


@pytest.mark.parametrize("table_format", ["parquet", "csv", "jsonl"])
def test_round_trip_every_table_format(manifest_dir: Path, tmp_path: Path, table_format: str) -> None:
    original = _with_annotations(load_manifest(manifest_dir))
    original.image_root = str(original.root())
    save_manifest(original, tmp_path / table_format, table_format=table_format)
    back = load_manifest(tmp_path / table_format)
    pd.testing.assert_frame_equal(back.images, load_manifest(manifest_dir).images, check_dtype=True)
    pd.testing.assert_frame_equal(back.annotations, original.annotations.astype(back.annotations.dtypes)[back.annotations.columns])
    assert back.categories == original.categories and back.tasks == original.tasks
    assert back.image_path(back.images["path"].iloc[0]).is_file()


def test_header_records_schema_tables_and_counts(manifest_dir: Path) -> None:
    header = json.loads((manifest_dir / "manifest.json").read_text())
    assert header["schema_version"] == 1
    assert header["tables"] == {"images": "images.parquet", "annotations": "annotations.parquet"}
    assert header["counts"] == {"images": 6, "annotations": 0}
    assert header["categories"] == [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]


def test_corrupt_header_names_line_and_column(manifest_dir: Path) -> None:
    (manifest_dir / "manifest.json").write_text('{\n  "schema_version": 1,\n  "tables": {oops}\n}\n')
    with pytest.raises(ManifestError, match=r"manifest.json: line 3, column 14: invalid JSON"):
        load_manifest(manifest_dir)


def test_newer_schema_version_is_refused(manifest_dir: Path) -> None:
    header = json.loads((manifest_dir / "manifest.json").read_text())
    header["schema_version"] = 7
    (manifest_dir / "manifest.json").write_text(json.dumps(header))
    with pytest.raises(ManifestError, match="schema_version 7 was written by a newer datakit; this one reads up to 1"):
        load_manifest(manifest_dir)


def test_corrupt_parquet_table(manifest_dir: Path) -> None:
    (manifest_dir / "images.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ManifestError, match=r"images.parquet: cannot read parquet table"):
        load_manifest(manifest_dir)


def test_not_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a manifest"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("width", "wide", "row 2, column 'width': value 'wide' is not a valid Int64"),
        ("status", "sparkly", "row 2, column 'status': value 'sparkly' is not one of"),
        ("split", "holdout", "row 2, column 'split': value 'holdout' is not one of"),
        ("label", "zebra", "row 2, column 'label': value 'zebra' is not one of ['cat', 'dog']"),
        ("path", "../../etc/passwd", "row 2, column 'path': value '../../etc/passwd' leaves the image root"),
        ("path", "/etc/passwd", "row 2, column 'path': value '/etc/passwd' is absolute"),
        ("id", "", "row 2, column 'id': value is empty but required"),
    ],
)
def test_bad_values_name_file_row_column_and_value(manifest_dir: Path, tmp_path: Path, column: str, value: str, message: str) -> None:
    m = load_manifest(manifest_dir)
    m.image_root = str(m.root())
    save_manifest(m, tmp_path / "csv", table_format="csv")
    table = pd.read_csv(tmp_path / "csv" / "images.csv", dtype=str, keep_default_na=False)
    table.loc[2, column] = value
    table.to_csv(tmp_path / "csv" / "images.csv", index=False)
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "csv")
    assert "images.csv" in str(info.value) and message in str(info.value)


def test_duplicate_ids_and_unknown_annotation_image(manifest_dir: Path, tmp_path: Path) -> None:
    m = _with_annotations(load_manifest(manifest_dir))
    m.annotations.loc[0, "image_id"] = "no-such-image"
    with pytest.raises(ManifestError, match="column 'image_id': value 'no-such-image' is not an image id"):
        save_manifest(m, tmp_path / "x")
    m = load_manifest(manifest_dir)
    m.images.loc[3, "id"] = m.images.loc[0, "id"]
    with pytest.raises(ManifestError, match="row 3, column 'id'.*is not unique"):
        save_manifest(m, tmp_path / "y")


def test_crash_while_saving_leaves_old_manifest_loadable(manifest_dir: Path, monkeypatch) -> None:
    before = load_manifest(manifest_dir)
    changed = load_manifest(manifest_dir)
    changed.images = changed.images.iloc[:2]
    real_write = manifest_module._write_table
    calls = []

    def crash_on_second_table(df, path, fmt):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(df, path, fmt)

    monkeypatch.setattr(manifest_module, "_write_table", crash_on_second_table)
    with pytest.raises(OSError):
        save_manifest(changed, manifest_dir)
    monkeypatch.undo()
    after = load_manifest(manifest_dir)
    pd.testing.assert_frame_equal(after.images, before.images)
    assert not [p for p in manifest_dir.iterdir() if ".tmp" in p.name]
    # the next successful save replaces everything and cleans up the stray table it wrote
    save_manifest(changed, manifest_dir)
    assert len(load_manifest(manifest_dir).images) == 2
    header = json.loads((manifest_dir / "manifest.json").read_text())
    assert sorted(p.name for p in manifest_dir.iterdir()) == sorted(["manifest.json", *header["tables"].values()])


def test_save_rewrites_under_new_table_names_then_cleans_up(manifest_dir: Path) -> None:
    m = load_manifest(manifest_dir)
    save_manifest(m, manifest_dir)
    header = json.loads((manifest_dir / "manifest.json").read_text())
    assert header["tables"]["images"] != "images.parquet"  # never overwritten in place
    assert sorted(p.name for p in manifest_dir.iterdir()) == sorted(["manifest.json", *header["tables"].values()])
