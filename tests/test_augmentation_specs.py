"""Spec files (albumentations' A.save form, YAML and JSON, and the short list form) and their errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import yaml

from datakit.augmentation import specs, targets
from datakit.config import resolve_config
from datakit.errors import DatakitError
from datakit.online_augment import build_transform


def _user_pipeline() -> A.Compose:
    return A.Compose([A.HorizontalFlip(p=1.0), A.Affine(rotate=(-20, 20), p=1.0),
                      A.OneOf([A.Blur(p=1.0), A.MotionBlur(p=1.0)], p=0.5)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.25))


@pytest.mark.parametrize("data_format", ["yaml", "json"])
def test_albumentations_saved_pipeline_loads_with_its_box_settings(tmp_path: Path, data_format: str) -> None:
    path = tmp_path / f"aug.{data_format}"
    A.save(_user_pipeline(), str(path), data_format=data_format)
    pipeline = specs.resolve(str(path), task="detection", seed=3)
    assert pipeline.source == f"file:aug.{data_format}"
    assert [type(t).__name__ for t in pipeline.compose.transforms] == ["HorizontalFlip", "Affine", "OneOf"]
    # the user's min_visibility is kept; boxes use datakit's convention (COCO pixels) whatever the file said
    params = pipeline.compose.processors["bboxes"].params
    assert (params.format, params.min_visibility) == ("coco", 0.25)
    # what albumentations itself loads runs identically
    sample = targets.Sample(image=np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8),
                            boxes=[[5, 5, 10, 10]], labels=[1])
    theirs = targets.target_aware(A.load(str(path), data_format=data_format))
    theirs.set_random_seed(5)
    pipeline.compose.set_random_seed(5)
    np.testing.assert_array_equal(targets.apply(theirs, sample).sample.image,
                                  targets.apply(pipeline.compose, sample).sample.image)


def test_short_form_file_and_list_build_the_same_pipeline(tmp_path: Path) -> None:
    short = [{"HorizontalFlip": {"p": 0.5}}, {"Affine": {"rotate": [-10, 10], "p": 0.5}},
             {"name": "RandomBrightnessContrast", "p": 0.3}, "VerticalFlip"]
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(short))
    from_file = specs.resolve(path)
    from_list = specs.resolve(short)
    assert from_file.hash() == from_list.hash()
    assert [type(t).__name__ for t in from_list.compose.transforms] == [
        "HorizontalFlip", "Affine", "RandomBrightnessContrast", "VerticalFlip"]


@pytest.mark.parametrize(("content", "message"), [
    ([{"HorizontalFlp": {"p": 0.5}}], r"bad\.yaml\[0\]: unknown transform 'HorizontalFlp'; did you mean 'HorizontalFlip'\?"),
    ([{"Affine": {"rotat": [-5, 5]}}], r"bad\.yaml\[0\]: Affine: unknown parameter 'rotat'; did you mean 'rotate'\?"),
    ([{"Affine": {"rotate": "lots"}}], r"bad\.yaml\[0\]: Affine: bad parameters"),
    ({"__version__": "2.0.8", "transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "Afine", "p": 1.0}]}},
     r"bad\.yaml: transform\.transforms\[0\]: unknown transform 'Afine'; did you mean 'Affine'\?"),
    ({"__version__": "2.0.8", "transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip", "probability": 1.0}]}},
     r"bad\.yaml: transform\.transforms\[0\]: HorizontalFlip: unknown parameter 'probability'"),
    ({"__version__": "2.0.8", "transfrom": {}}, r"bad\.yaml: unknown key 'transfrom'; did you mean 'transform'\?"),
    ({"augmentations": 3}, r"bad\.yaml: expected albumentations' serialized form"),
])
def test_bad_spec_file_names_the_problem(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(DatakitError, match=message):
        specs.resolve(path)


def test_spec_file_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"HorizontalFlip": {"p": 0.5}},\n oops]')
    with pytest.raises(DatakitError, match=r"broken\.json: line 2, column 2: invalid JSON"):
        specs.resolve(path)
    with pytest.raises(DatakitError, match="spec file does not exist"):
        specs.resolve(tmp_path / "nope.yaml")


def test_bad_spec_file_on_the_command_line_is_one_clear_line(tmp_path: Path) -> None:
    spec = tmp_path / "aug.yaml"
    spec.write_text("- Afine: {rotate: [-5, 5]}\n")
    manifest = tmp_path / "m"
    manifest.mkdir()
    (manifest / "manifest.json").write_text(json.dumps({"schema_version": 1, "tables": {"images": "images.csv"}}))
    (manifest / "images.csv").write_text("id,path,status,split\na,a.png,ok,train\n")
    proc = subprocess.run([sys.executable, "-m", "datakit", "augment", str(manifest), "-o", str(tmp_path / "out"),
                           "--spec", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "aug.yaml[0]: unknown transform 'Afine'; did you mean 'Affine'?" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out").exists()


def test_train_config_takes_presets_and_spec_files(tmp_path: Path) -> None:
    config = resolve_config(None, {"augment": "medium:fixed"})
    transform = build_transform(config.augment, seed=0)
    assert "HorizontalFlip" not in {type(t).__name__ for t in transform.transforms}
    assert transform(image=np.zeros((16, 16, 1), np.uint8))["image"].shape[:2] == (16, 16)
    path = tmp_path / "aug.json"
    A.save(A.Compose([A.VerticalFlip(p=1.0)]), str(path), data_format="json")
    config = resolve_config(None, {"augment": str(path)})
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    np.testing.assert_array_equal(build_transform(config.augment, seed=0)(image=image)["image"], image[::-1])
