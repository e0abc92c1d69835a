"""Every bad input the foundation issue names: one clear message or a reported skip, nothing lost."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import datakit.imageinfo as imageinfo
from datakit import load_manifest
from datakit.cli import app
from datakit.errors import CheckFailed, DatakitError
from datakit.ingest import ingest
from tests.conftest import (
    truncate,
    write_cmyk_jpeg,
    write_exif_rotated_jpeg,
    write_jpeg,
    write_png,
    write_png16,
)

runner = CliRunner()


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """One folder with every kind of awkward file, good and broken."""
    src = tmp_path / "zoo" / "things"
    write_jpeg(src / "good.jpg")
    (src / "empty.jpg").write_bytes(b"")
    truncate(write_jpeg(src / "cut.jpg", width=64, height=64))
    truncate(write_png(src / "cut.png", width=64, height=64))
    (src / "notes.jpg").write_text("this is a text file, not a photo\n")
    write_cmyk_jpeg(src / "cmyk.jpg")
    write_png16(src / "deep.png")
    write_png(src / "alpha.png", mode="RGBA")
    write_png(src / "gray.png", mode="L")
    write_exif_rotated_jpeg(src / "rotated.jpg", width=40, height=20, orientation=6)
    write_exif_rotated_jpeg(src / "flipped.jpg", width=40, height=20, orientation=3)
    Image.new("P", (12, 8)).save(src / "anim.gif")
    Image.new("RGB", (14, 9)).save(src / "scan.tiff")
    Image.new("RGB", (10, 10)).save(src / "icon.ico")
    (src / "readme.txt").write_text("not scanned: not an image extension")
    return src.parent


def test_every_awkward_file_gets_the_right_status_and_facts(zoo: Path, tmp_path: Path) -> None:
    result = ingest(zoo, tmp_path / "m", show_progress=False)
    rows = {r["path"].split("/")[-1]: r for r in load_manifest(tmp_path / "m").images.to_dict("records")}
    assert "readme.txt" not in rows
    status = {name: r["status"] for name, r in rows.items()}
    assert status == {
        "good.jpg": "ok", "empty.jpg": "empty", "cut.jpg": "truncated", "cut.png": "truncated",
        "notes.jpg": "not_image", "cmyk.jpg": "ok", "deep.png": "ok", "alpha.png": "ok", "gray.png": "ok",
        "rotated.jpg": "ok", "flipped.jpg": "ok", "anim.gif": "ok", "scan.tiff": "ok", "icon.ico": "unsupported",
    }
    assert "0 bytes" in rows["empty.jpg"]["reason"]
    assert "FFD9" in rows["cut.jpg"]["reason"] and "IEND" in rows["cut.png"]["reason"]
    assert "not an image" in rows["notes.jpg"]["reason"]
    assert "ICO" in rows["icon.ico"]["reason"]
    assert (rows["cmyk.jpg"]["mode"], rows["cmyk.jpg"]["channels"]) == ("CMYK", 4)
    assert rows["deep.png"]["bit_depth"] == 16
    assert rows["alpha.png"]["channels"] == 4 and rows["gray.png"]["channels"] == 1
    # orientation 6 rotates by 90 degrees: stored 40x20, displayed 20x40; orientation 3 does not swap
    assert (rows["rotated.jpg"]["width"], rows["rotated.jpg"]["height"], rows["rotated.jpg"]["orientation"]) == (20, 40, 6)
    assert (rows["flipped.jpg"]["width"], rows["flipped.jpg"]["height"]) == (40, 20)
    assert rows["anim.gif"]["format"] == "GIF" and rows["scan.tiff"]["format"] == "TIFF"
    assert len(result.broken) == 5 and {b["path"].split("/")[-1] for b in result.broken} == {
        "empty.jpg", "cut.jpg", "cut.png", "notes.jpg", "icon.ico"}


def test_all_eight_exif_orientations(tmp_path: Path) -> None:
    src = tmp_path / "o"
    for orientation in range(1, 9):
        write_exif_rotated_jpeg(src / f"o{orientation}.jpg", width=40, height=20, orientation=orientation)
    ingest(src, tmp_path / "m", show_progress=False)
    rows = {r["path"]: r for r in load_manifest(tmp_path / "m").images.to_dict("records")}
    for orientation in range(1, 9):
        row = rows[f"o{orientation}.jpg"]
        assert row["orientation"] == orientation
        expected = (20, 40) if orientation >= 5 else (40, 20)
        assert (row["width"], row["height"]) == expected, orientation


def test_decode_verify_catches_damage_that_structure_check_misses(tmp_path: Path) -> None:
    src = tmp_path / "d"
    # a JPEG whose scan data is gone but whose last bytes are still an end marker
    jpeg = write_jpeg(src / "spliced.jpg", width=64, height=64)
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[: data.index(b"\xff\xda")] + b"\xff\xd9")
    # a PNG whose compressed pixel data is scrambled but whose IEND chunk is intact
    # (the chunk's CRC is recomputed: a wrong CRC is caught on open by some Pillow versions, and the
    # point here is damage that only decoding the pixels can see, on every Pillow version)
    png = write_png(src / "scrambled.png", width=64, height=64)
    data = bytearray(png.read_bytes())
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4: at])[0]
    data[at + 8: at + 208] = bytes(range(200))
    data[at + 4 + length: at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[at: at + 4 + length])))
    png.write_bytes(bytes(data))
    ingest(src, tmp_path / "m1", show_progress=False)
    ingest(src, tmp_path / "m2", verify="decode", show_progress=False)
    structure = load_manifest(tmp_path / "m1").images.set_index("path")
    assert structure.loc["scrambled.png", "status"] == "ok"
    # Pillow 12 reads the JPEG header up to its (missing) scan and refuses it on open; Pillow 13 opens
    # it: either way it is a damaged JPEG, never "not an image"
    assert structure.loc["spliced.jpg", "status"] in ("ok", "corrupt")
    decoded = load_manifest(tmp_path / "m2").images
    assert decoded["status"].tolist() == ["corrupt", "corrupt"]
    assert "decode failed" in decoded.set_index("path").loc["scrambled.png", "reason"]


def test_strict_fails_and_writes_nothing(zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match=r"5 broken file\(s\)"):
        ingest(zoo, tmp_path / "m", strict=True, show_progress=False)
    assert not (tmp_path / "m" / "manifest.json").exists()
    result = runner.invoke(app, ["ingest", str(zoo), "-o", str(tmp_path / "m"), "--strict"])
    assert result.exit_code == 1 and "broken" in result.output


def test_unreadable_file_is_reported(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "u"
    write_jpeg(src / "fine.jpg")
    locked = write_jpeg(src / "locked.jpg")
    locked.chmod(0)
    real_open = os.open

    def guarded_open(path, *args, **kwargs):  # root reads mode-000 files, so refuse like a normal user's OS
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    monkeypatch.undo()
    rows = {r["path"]: r for r in load_manifest(tmp_path / "m").images.to_dict("records")}
    assert rows["locked.jpg"]["status"] == "unreadable"
    assert "permission denied" in rows["locked.jpg"]["reason"].lower()
    assert rows["fine.jpg"]["status"] == "ok"


def test_folder_with_no_images(tmp_path: Path) -> None:
    src = tmp_path / "nothing"
    src.mkdir()
    (src / "notes.txt").write_text("hi")
    with pytest.raises(DatakitError, match="no image files found"):
        ingest(src, tmp_path / "m", show_progress=False)
    result = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "no image files found" in result.output
    assert "Traceback" not in result.output


def test_a_folder_whose_every_image_is_refused_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file a symlink leaving SRC: the error said 'no image files found (looked for .avif, ...)'."""
    monkeypatch.delenv("DATAKIT_ALLOW_OUTSIDE", raising=False)
    src = tmp_path / "src"
    for name in ("a", "b"):
        (src / "cls").mkdir(parents=True, exist_ok=True)
        (src / "cls" / f"{name}.png").symlink_to(write_png(tmp_path / "elsewhere" / f"{name}.png", 8, 8))
    result = runner.invoke(app, ["ingest", str(src), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    said = " ".join(result.output.split())
    assert "no image files found" not in said
    assert "2 entr(ies) refused, first: cls/a.png (symlink resolves outside the source" in said
    assert "2 of them symlink(s) leaving the source (--allow-outside follows them)" in said
    trusted = ingest(src, tmp_path / "m", show_progress=False, workers=1, allow_outside=True)
    assert trusted.total == 2


def test_missing_source_folder(tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match="not a folder"):
        ingest(tmp_path / "nope", tmp_path / "m", show_progress=False)


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("file,label,colour\na.jpg,cat,red\n", "unknown column(s) 'colour'"),
        ("name,label\na.jpg,cat\n", "unknown column(s) 'name'"),
        ("file\na.jpg\n", "missing column(s) 'label'"),
        ("", "labels file is empty"),
        ("file,label,split\na.jpg,cat,holdout\n", "line 2, column 'split': 'holdout'"),
        ("file,label\na.jpg,cat\na.jpg,dog\n", "different labels on lines 2, 3"),
    ],
)
def test_bad_labels_csv(tmp_path: Path, csv_text: str, message: str) -> None:
    src = tmp_path / "flat"
    write_jpeg(src / "a.jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text(csv_text)
    with pytest.raises(DatakitError) as info:
        ingest(src, tmp_path / "m", labels=csv, show_progress=False)
    assert message in str(info.value) and str(csv) in str(info.value)


def test_labels_csv_with_missing_files_and_escapes_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    write_jpeg(src / "a.jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\na.jpg,cat\nmissing.jpg,dog\n../../etc/passwd,dog\n/etc/hosts,dog\n")
    result = ingest(src, tmp_path / "m", labels=csv, show_progress=False)
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "not found" in reasons["missing.jpg"]
    assert "leaves the source folder" in reasons["../../etc/passwd"]
    assert "leaves the source folder" in reasons["/etc/hosts"]
    assert len(load_manifest(tmp_path / "m").images) == 1


def test_ctrl_c_leaves_previous_manifest_intact(class_folder: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "m"
    ingest(class_folder, out, show_progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for i in range(5):
        write_jpeg(class_folder / "cat" / f"more_{i}.jpg", seed=50 + i)
    calls = []
    real = imageinfo.inspect_file

    def interrupted(path, verify="structure", max_pixels=None):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, verify, max_pixels)

    monkeypatch.setattr(imageinfo, "inspect_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest(class_folder, out, workers=1, show_progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert len(load_manifest(out).images) == 6
    calls.clear()
    result = runner.invoke(app, ["ingest", str(class_folder), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 130 and "previous output is intact" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
