"""A file or folder a command writes may not land on the data set it reads: the manifest's folder,
its image root, or one of its images (README: "An output that is the input ... is refused")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import datakit
from datakit.errors import DatakitError
from tests.formats_data import two_image_coco


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    """12 shapes (images under s/images/<class>) and their manifest m."""
    datakit.sample("shapes", tmp_path / "s", count=12, show_progress=False)
    datakit.ingest(tmp_path / "s" / "images", tmp_path / "m", show_progress=False)
    return tmp_path


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _an_image(root: Path, cls: str) -> Path:
    return sorted((root / "s" / "images" / cls).glob("*.png"))[0]


@pytest.mark.parametrize("target", ["m/manifest.json", "circle image", "m/report.html", "s/images/report.html"])
def test_balance_report_html_onto_the_data_set_is_refused(shapes: Path, target: str) -> None:
    output = _an_image(shapes, "circle") if target == "circle image" else shapes / target
    before = _files(shapes)
    with pytest.raises(DatakitError, match="--html .*is inside the manifest's"):
        datakit.balance_report(shapes / "m", html=output, show_progress=False)
    assert _files(shapes) == before


def test_balance_report_html_onto_a_folder_is_one_error_before_any_work(shapes: Path) -> None:
    (shapes / "d").mkdir()
    done = subprocess.run([sys.executable, "-m", "datakit", "balance-report", str(shapes / "m"), "--html",
                           str(shapes / "d")], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "is a folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""  # refused before the report ran
    assert list((shapes / "d").iterdir()) == []


def test_augment_preview_onto_an_image_is_refused(shapes: Path) -> None:
    image = _an_image(shapes, "square")
    before = _files(shapes)
    with pytest.raises(DatakitError, match="--preview .*is inside the manifest's image folder"):
        datakit.augment(shapes / "m", preview=image, split="all", show_progress=False)
    assert _files(shapes) == before


def test_train_output_inside_the_image_folder_is_refused(shapes: Path) -> None:
    output = shapes / "s" / "images" / "run"
    with pytest.raises(DatakitError, match="-o .*is inside the manifest's image folder"):
        datakit.train(shapes / "m", output=output, show_progress=False, epochs=1)
    assert not output.exists()


def test_eval_predictions_output_inside_the_manifest_folder_is_refused(tmp_path: Path) -> None:
    src = two_image_coco(tmp_path / "coco")
    datakit.ingest(src, tmp_path / "m", show_progress=False)
    predictions = tmp_path / "predictions.json"
    predictions.write_text(json.dumps([{"file_name": "a.png", "category_id": 1, "bbox": [10, 10, 5, 5],
                                        "score": 0.9}]))
    before = _files(tmp_path / "m")
    with pytest.raises(DatakitError, match="-o .*is inside the manifest's folder"):
        datakit.evaluate_predictions(predictions, tmp_path / "m", output=tmp_path / "m" / "eval", plots=False)
    assert _files(tmp_path / "m") == before and not (tmp_path / "m" / "eval").exists()


def test_sweep_output_inside_the_manifest_folder_is_refused(shapes: Path) -> None:
    space = {"sampler": "grid", "pruner": "none", "params": {"optim.lr": [0.01]}, "set": {"train.epochs": 1}}
    with pytest.raises(DatakitError, match="-o .*is inside the manifest's folder"):
        datakit.sweep(shapes / "m", space, shapes / "m" / "sweep", show_progress=False)
    assert not (shapes / "m" / "sweep").exists()


def test_eval_and_predict_outputs_inside_their_inputs_are_refused(digits_run, tmp_path: Path) -> None:
    from datakit.manifest import load_manifest
    from datakit.engine.rundir import RunDir

    manifest = load_manifest(RunDir(digits_run.run_dir).read_info()["manifest"])
    with pytest.raises(DatakitError, match="-o .*is inside the manifest's image folder"):
        datakit.evaluate(digits_run.run_dir, output=manifest.root() / "eval", show_progress=False)
    assert not (manifest.root() / "eval").exists()
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.png").write_bytes(next(manifest.root().rglob("*.png")).read_bytes())
    with pytest.raises(DatakitError, match="-o .*is inside the input folder"):
        datakit.predict(digits_run.run_dir, [folder], output=folder / "out")
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
