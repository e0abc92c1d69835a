"""Inputs that printed a Python traceback now end in one clear line or a reported row (issue 11)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from datakit.cli import app
from datakit.config import resolve_config
from datakit.errors import DatakitError
from datakit.ingest import ingest
from datakit.manifest import load_manifest
from tests.conftest import REPO, write_png
from tests.formats_data import tiny_coco

runner = CliRunner()


def _fails_in_one_line(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text
    return text


def test_a_non_utf8_file_name_is_a_bad_name_row_and_the_others_are_ingested(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_png(src / "cat" / "fine.png", 8, 8)
    raw = os.fsencode(src / "cat") + b"/caf\xe9 100%.png"
    with open(raw, "wb") as fh:
        fh.write((src / "cat" / "fine.png").read_bytes())
    result = ingest(src, tmp_path / "m", workers=1, show_progress=False)
    rows = load_manifest(tmp_path / "m").images.set_index("path")
    assert result.status_counts == {"bad_name": 1, "ok": 1}
    bad = rows[rows["status"] == "bad_name"]
    stored = bad.index[0]
    assert stored == "cat/caf%E9 100%25.png" and "percent-encoded" in bad["reason"].iloc[0]
    # reversible: the stored text gives back exactly the bytes of the name on disk
    assert os.fsencode(src) + b"/" + unquote_to_bytes(stored) == raw
    assert rows.loc["cat/fine.png", "status"] == "ok" and rows.loc["cat/fine.png", "label"] == "cat"
    again = ingest(src, tmp_path / "m", workers=1, show_progress=False)  # incremental: stable
    assert again.unchanged == 2


def test_deeply_nested_coco_json(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text('{"images": [], "info": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _fails_in_one_line(["ingest", str(root), "-o", str(tmp_path / "root.manifest")], "nested too deeply")


def test_coco_width_of_ten_to_the_thirty(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    path = tiny_coco(root, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 2]}])
    data = json.loads(path.read_text())
    data["images"][0]["width"] = 10**30
    path.write_text(json.dumps(data))
    result = ingest(root, tmp_path / "coco.manifest", show_progress=False)
    image = load_manifest(tmp_path / "coco.manifest").images.iloc[0]
    assert image["status"] == "ok" and int(image["width"]) == 8  # the file's own size
    assert any("not a plausible image size" in c["reason"] for c in result.report.changed)


def test_a_coco_file_with_a_50_mb_info_block_is_still_detected(tmp_path: Path) -> None:
    root = tmp_path / "big"
    path = tiny_coco(root, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 2]}])
    data = json.loads(path.read_text())
    path.write_text(json.dumps({"info": {"description": "x" * 50_000_000}, **data}))
    assert path.stat().st_size > 50_000_000
    result = ingest(root, tmp_path / "big.manifest", show_progress=False)
    assert result.format == "coco" and result.annotations == 1


def test_a_non_utf8_voc_labelmap(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    write_png(root / "JPEGImages" / "a.png", 8, 8)
    (root / "Annotations").mkdir(parents=True)
    (root / "labelmap.txt").write_bytes(b"# label:color_rgb:parts:actions\nbackground:0,0,0::\nchat\xe9:1,2,3::\n")
    _fails_in_one_line(["ingest", str(root), "-o", str(tmp_path / "voc.manifest"), "--format", "voc"],
                       "labelmap.txt", "not UTF-8 text", "0xe9")


@pytest.mark.parametrize("key, value, message", [
    ("optim.lr", float("nan"), "config key 'optim.lr' must be a finite number, got nan"),
    ("optim.lr", float("inf"), "config key 'optim.lr' must be a finite number, got inf"),
    ("optim.lr", -0.1, "config key 'optim.lr' must be > 0, got -0.1"),
    ("optim.momentum", float("nan"), "config key 'optim.momentum' must be a finite number"),
    ("data.image_size", 100000, "at most 4096 pixels a side, got 100000: one image at that size is 112 GiB"),
    ("data.image_size", 0, "must be a positive side or [height, width], got 0"),
])
def test_config_values_out_of_range(key: str, value: object, message: str) -> None:
    with pytest.raises(DatakitError) as caught:
        resolve_config(None, {key: value})
    assert message in str(caught.value)


@pytest.mark.parametrize("assignment, message", [
    ("optim.lr=.nan", "config key 'optim.lr' must be a finite number, got nan"),
    ("data.image_size=0", "must be a positive side or [height, width], got 0"),  # brackets survive rich markup
])
def test_config_errors_print_whole_from_the_cli(tmp_path: Path, assignment: str, message: str) -> None:
    _fails_in_one_line(["train", str(tmp_path), "-o", str(tmp_path / "run"), "--set", assignment, "--print-config"],
                       message)


def test_ctrl_c_during_start_up_is_one_line() -> None:
    # as from a terminal (a test runner started in the background inherits Ctrl-C ignored)
    code = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "sys.argv[0] = '/venv/bin/datakit'\nimport datakit.cli, os, time\n"
            "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(10)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 130
    assert out.stderr.strip() == "interrupted: datakit was starting; nothing was done"
    # a program that merely imports the CLI keeps its own Ctrl-C handling
    library = ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\nimport datakit.cli\n"
               "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n")
    subprocess.run([sys.executable, "-c", library], cwd=REPO, check=True, timeout=60)


def test_a_float32_tiff_is_refused_at_ingest_not_mid_training(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_png(src / "a" / "ok.png", 8, 8)
    Image.fromarray(np.random.default_rng(0).random((8, 8), dtype=np.float32)).save(src / "a" / "float.tif")
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    rows = load_manifest(tmp_path / "m").images.set_index("path")
    assert rows.loc["a/float.tif", "status"] == "unsupported"
    assert "32-bit float" in rows.loc["a/float.tif", "reason"] and "convert" in rows.loc["a/float.tif", "reason"]


def test_a_folder_symlink_loop_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_png(src / "a" / "x.png", 8, 8)
    (src / "a" / "again").symlink_to(src / "a")  # points to the folder that holds it
    (src / "b").mkdir()
    os.symlink(src / "b" / "l2", src / "b" / "l1")
    os.symlink(src / "b" / "l1", src / "b" / "l2")  # l1 -> l2 -> l1
    result = ingest(src, tmp_path / "m", workers=1, show_progress=False)
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "symlink loop" in reasons["a/again"] and "symlink loop" in reasons["b/l1"]
    assert result.total == 1


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_a_zero_by_zero_png_is_called_what_it_is(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_png(src / "ok.png", 8, 8)
    (src / "empty.png").write_bytes(_png_with_size(0, 0))
    ingest(src, tmp_path / "m", workers=1, show_progress=False)
    row = load_manifest(tmp_path / "m").images.set_index("path").loc["empty.png"]
    assert row["status"] == "corrupt" and row["reason"] == "PNG header declares a zero size (0x0 pixels)"


def test_a_missing_manifest_does_not_exist(tmp_path: Path) -> None:
    _fails_in_one_line(["info", str(tmp_path / "data" / "digits.manifest")], "does not exist")
    (tmp_path / "folder").mkdir()
    _fails_in_one_line(["info", str(tmp_path / "folder")], "not a manifest")


def test_a_loaded_manifest_given_to_the_api_is_one_clear_error(tmp_path: Path) -> None:
    """datakit.train(manifest_object) failed deep inside with "expected str, bytes or os.PathLike"."""
    import datakit

    write_png(tmp_path / "src" / "a" / "1.png")
    write_png(tmp_path / "src" / "b" / "1.png", seed=1)
    ingest(tmp_path / "src", tmp_path / "m", show_progress=False)
    loaded = load_manifest(tmp_path / "m")
    for call in (lambda: datakit.train(loaded), lambda: datakit.sweep(loaded, {"params": {"lr": [0.1]}}),
                 lambda: datakit.evaluate(None, manifest=loaded)):
        with pytest.raises(DatakitError, match=r"give the manifest's folder \(a path\), not a loaded Manifest"):
            call()


def test_an_os_error_is_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder without write permission (or a name too long for the file system) printed a 57-line
    traceback with exit 1, which the docs keep for failed checks."""
    from typer.testing import CliRunner

    from datakit import samples
    from datakit.cli import app

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "x.png"))

    monkeypatch.setattr(samples, "sample", refuse)
    result = CliRunner().invoke(app, ["sample", "shapes", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'out' / 'x.png'}: Permission denied"]
