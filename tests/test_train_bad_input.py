"""Every bad input to train/eval/predict ends in one clear line (exit code 2 from the CLI)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError
from datakit.evaluation import evaluate
from datakit.ingest import ingest
from datakit.manifest import load_manifest, save_manifest
from datakit.prediction import predict
from datakit.training import train
from tests.conftest import TINY_TRAIN, write_png


def _folder_manifest(tmp_path: Path, classes: dict[str, int], layout: str = "auto") -> Path:
    for name, count in classes.items():
        for i in range(count):
            write_png(tmp_path / "src" / name / f"{name}_{i}.png", 8, 8, seed=i)
    ingest(tmp_path / "src", tmp_path / "manifest", layout=layout, workers=1, show_progress=False)
    return tmp_path / "manifest"


def test_manifest_without_labels(tmp_path: Path) -> None:
    manifest = _folder_manifest(tmp_path, {"a": 3, "b": 3}, layout="unlabeled")
    with pytest.raises(DatakitError, match=r"no image has a label; classification needs one per image"):
        train(manifest, output=tmp_path / "run", show_progress=False, **TINY_TRAIN)


def test_manifest_with_one_class(tmp_path: Path) -> None:
    manifest = _folder_manifest(tmp_path, {"cat": 4})
    with pytest.raises(DatakitError, match=r"needs at least two classes, found 1 \('cat'\)"):
        train(manifest, output=tmp_path / "run", show_progress=False, **TINY_TRAIN)


def test_empty_val_split(digits_small: Path, tmp_path: Path, allow_outside: None) -> None:
    m = load_manifest(digits_small)
    m.images["split"] = ["test" if i % 4 == 0 else "train" for i in range(len(m.images))]
    save_manifest(m, tmp_path / "m")
    with pytest.raises(DatakitError, match=r"split 'val' has no labelled usable images"):
        train(tmp_path / "m", output=tmp_path / "run", show_progress=False,
              **{**TINY_TRAIN, "data.val_fraction": 0.0})


def test_unknown_model_and_unknown_key_suggest_the_closest(digits_small: Path, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match=r"unknown model 'mobilenet_v3_smal'; did you mean 'mobilenet_v3_small'\?"):
        train(digits_small, output=tmp_path / "a", show_progress=False, model="mobilenet_v3_smal")
    with pytest.raises(DatakitError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"):
        train(digits_small, output=tmp_path / "b", show_progress=False, **{"optim.lrr": 0.1})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_reports_bad_input_in_one_line_with_exit_code_2(digits_small: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(digits_small), "-o", str(tmp_path / "run"), "--set", "optim.lrr=0.1"])
    assert result.exit_code == 2
    assert "did you mean 'optim.lr'" in result.output
    result = runner.invoke(app, ["train", str(digits_small), "-o", str(tmp_path / "run"), "--model", "resnet81"])
    assert result.exit_code == 2 and "did you mean 'resnet18'" in result.output


def test_output_folder_in_use_and_nothing_to_resume(digits_run, digits_small: Path, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match=r"output folder exists and is not empty \(it holds a run: add --resume"):
        train(digits_small, output=digits_run.run_dir, show_progress=False, **TINY_TRAIN)
    with pytest.raises(DatakitError, match=r"nothing to resume \(no checkpoints/last.pt"):
        train(digits_small, output=tmp_path / "new", resume=True, show_progress=False)
    with pytest.raises(DatakitError, match=r"already trained 6 epochs"):
        copy = tmp_path / "copy"
        shutil.copytree(digits_run.run_dir, copy)
        train(None, output=copy, resume=True, show_progress=False)


def test_image_damaged_since_ingest_is_left_out_and_named(digits_small: Path, tmp_path: Path) -> None:
    m = load_manifest(digits_small)
    source = tmp_path / "images"
    shutil.copytree(m.root(), source)
    m.image_root = str(source)
    save_manifest(m, tmp_path / "m")
    victim = source / m.images["path"].iloc[5]
    victim.write_bytes(b"garbage")
    # one bad file never stops a run: it is left out, counted and named in the notes
    result = train(tmp_path / "m", output=tmp_path / "run", show_progress=False, epochs=1, **TINY_TRAIN)
    assert result.status == "completed"
    note = next(n for n in result.notes if "could not be decoded" in n)
    assert note.startswith("1 ") and f"{victim.name}: cannot decode image" in note
    assert victim.name not in (tmp_path / "run" / "splits.csv").read_text()


def _broken_checkpoints(digits_run, tmp_path: Path) -> dict[str, Path]:
    good = digits_run.best_checkpoint.read_bytes()
    files = {"truncated": tmp_path / "truncated.pt", "text": tmp_path / "text.pt",
             "foreign": tmp_path / "foreign.pt", "code": tmp_path / "code.pt"}
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["text"].write_text("this is not a checkpoint\n")
    torch.save({"conv.weight": torch.zeros(2, 2)}, files["foreign"])  # a plain state dict from elsewhere
    torch.save({"format": "datakit-checkpoint", "payload": pickle.loads(pickle.dumps(Path("x")))}, files["code"])
    return files


def test_corrupt_or_foreign_checkpoints_are_refused_with_a_reason(digits_run, tmp_path: Path) -> None:
    files = _broken_checkpoints(digits_run, tmp_path)
    image = write_png(tmp_path / "image.png", 8, 8)
    with pytest.raises(DatakitError, match=r"truncated.pt: not a readable checkpoint"):
        evaluate(files["truncated"], show_progress=False)
    with pytest.raises(DatakitError, match=r"text.pt: not a readable checkpoint"):
        predict(files["text"], [image])
    with pytest.raises(DatakitError, match=r"foreign.pt: not a datakit checkpoint \(a state dict from another tool"):
        evaluate(files["foreign"], show_progress=False)
    with pytest.raises(DatakitError, match=r"code.pt: refused: the file holds objects other than tensors"):
        evaluate(files["code"], show_progress=False)
    result = CliRunner().invoke(app, ["eval", str(files["truncated"])])
    assert result.exit_code == 2 and "not a readable checkpoint" in result.output


def test_missing_run_and_unknown_split(digits_run, tmp_path: Path) -> None:
    with pytest.raises(DatakitError, match=r"no such run directory or checkpoint file"):
        evaluate(tmp_path / "nope", show_progress=False)
    with pytest.raises(DatakitError, match=r"unknown split 'tset'"):
        evaluate(digits_run.run_dir, split="tset", show_progress=False)
    with pytest.raises(DatakitError, match=r"no such file or folder"):
        predict(digits_run.run_dir, [tmp_path / "missing.png"])


def test_eval_on_an_empty_split_names_it(digits_run, digits_small: Path, tmp_path: Path, allow_outside: None) -> None:
    m = load_manifest(digits_small)
    m.images["split"] = ["val" if i % 5 == 0 else "train" for i in range(len(m.images))]
    save_manifest(m, tmp_path / "m")
    with pytest.raises(DatakitError, match=r"split 'test' has no labelled usable images \(by the manifest\)"):
        evaluate(digits_run.run_dir, tmp_path / "m", split="test", show_progress=False)
    assert evaluate(digits_run.run_dir, tmp_path / "m", split="val", show_progress=False)["images"] == 120
