"""`datakit ingest --format`, `datakit export`, `datakit convert`: thin commands, exit 2 with one line on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from tests.formats_data import shapes_set, shared, tiny_coco

# data sets live in session or shared (read-only) folders, manifests in each test's own folder
pytestmark = pytest.mark.usefixtures("allow_outside")

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_set(tmp_path_factory.mktemp("cli") / "shapes", count=6)


def test_ingest_detects_the_format_and_export_writes_another(shapes: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(shapes), "-o", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "coco" and data["images"] == 6 and data["report"]["counts"]["skipped"] == 0
    table = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "yolo", "-o", str(tmp_path / "y")])
    assert table.exit_code == 0, table.output
    assert "category ids remapped (4)" in table.stdout and "wrote yolo: 6 images" in table.stdout
    assert (tmp_path / "y" / "data.yaml").is_file()


def test_ingest_with_a_named_format_on_the_shared_voc(tmp_path: Path) -> None:
    src = shared("datumaro/voc")
    result = runner.invoke(app, ["ingest", str(src), "--format", "voc", "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "2 objects (voc)" in result.stdout


def test_convert_in_one_step(shapes: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", str(shapes), "--to", "voc", "-o", str(tmp_path / "voc"), "--images", "symlink", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["from"] == "coco" and data["format"] == "voc" and data["images"] == 6
    linked = next((tmp_path / "voc" / "JPEGImages").iterdir())
    assert linked.is_symlink() and linked.resolve().is_relative_to(shapes.resolve())


def test_bad_input_exits_2_with_one_line(shapes: Path, tmp_path: Path) -> None:
    tiny_coco(tmp_path / "bad", [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [6, 4, 5, 5], "area": 1, "iscrowd": 0}])
    failed = runner.invoke(app, ["ingest", str(tmp_path / "bad"), "-o", str(tmp_path / "m"), "--on-invalid", "fail"])
    assert failed.exit_code == 2
    assert failed.output.strip() == ("error: annotations/instances.json: annotations[0] (id 5): box [6, 4, 5, 5] extends outside "
                                     "the 8x6 image (use --on-invalid clip or skip to continue)")
    assert not (tmp_path / "m").exists()
    clipped = runner.invoke(app, ["ingest", str(tmp_path / "bad"), "-o", str(tmp_path / "m"), "--json"])
    assert clipped.exit_code == 0 and json.loads(clipped.stdout)["report"]["counts"]["changed"] == 1
    unknown = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "tfrecord", "-o", str(tmp_path / "x")])
    assert unknown.exit_code == 2
    assert "unknown format 'tfrecord'; known formats: coco, imagefolder, labelme, masks, voc, yolo" in unknown.output
    policy = runner.invoke(app, ["convert", str(shapes), "--to", "coco", "-o", str(tmp_path / "y"), "--on-invalid", "maybe"])
    assert policy.exit_code == 2 and "unknown --on-invalid 'maybe'; choose one of: clip, skip, fail" in policy.output
    nothing = runner.invoke(app, ["convert", str(shapes / "masks"), "--to", "coco", "-o", str(tmp_path / "z")])
    assert nothing.exit_code == 2 and "no annotation format recognized; name one with --format" in nothing.output
