"""Semantic mIoU/Dice/pixel accuracy against a hand-computed confusion matrix; localization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datakit import geometry
from datakit.errors import DatakitError
from datakit.manifest import Manifest, save_manifest
from datakit.metrics import scoring


def _semantic_set(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "m"
    truths = {"a": np.array([[0, 1, 1], [2, 2, 255]]), "b": np.array([[1, 1], [0, 0]])}
    preds = {"a": np.array([[0, 1, 2], [2, 255, 1]]), "b": np.array([[1, 0], [0, 0]])}
    for name, values in truths.items():
        geometry.write_label_png(root / "masks" / f"{name}.png", values.astype(np.uint8))
        geometry.write_label_png(tmp_path / "pred" / f"{name}.png", preds[name].astype(np.uint8))
    images = pd.DataFrame({
        "id": ["a", "b"], "path": ["images/a.png", "images/b.png"], "status": "ok",
        "width": [3, 2], "height": [2, 2], "semantic_mask": ["masks/a.png", "masks/b.png"],
    })
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}]
    save_manifest(Manifest(images=images, categories=categories, tasks=["semantic_segmentation"]), root)
    return root, tmp_path / "pred"


def test_semantic_equals_hand_computed_confusion(tmp_path: Path) -> None:
    manifest, pred = _semantic_set(tmp_path)
    result = scoring.evaluate_predictions(pred, manifest)
    assert result["task"] == "semantic"
    # pixels (true, predicted), ground-truth 255 left out:
    #   a: (0,0) (1,1) (1,2) (2,2) (2,255)    b: (1,1) (1,0) (0,0) (0,0)
    # rows true [background, cat, dog, bird], columns predicted [.., none]
    expected = [[3, 0, 0, 0], [1, 2, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert result["confusion_matrix"]["matrix"] == expected
    assert result["confusion_matrix"]["no_class_column"] == [0, 0, 1, 0]
    # TP 3,2,1; FP 1,0,1; FN 0,2,1 -> IoU 3/4, 2/4, 1/3; Dice 6/7, 4/6, 2/4; bird absent: NaN, not in the mean
    assert result["per_class"]["background"]["iou"] == pytest.approx(0.75)
    assert result["per_class"]["cat"]["iou"] == pytest.approx(0.5)
    assert result["per_class"]["dog"]["iou"] == pytest.approx(1 / 3)
    assert result["per_class"]["bird"]["iou"] is None
    assert result["miou"] == pytest.approx((0.75 + 0.5 + 1 / 3) / 3)
    assert result["dice"] == pytest.approx((6 / 7 + 4 / 6 + 2 / 4) / 3)
    assert result["pixel_accuracy"] == pytest.approx(6 / 9)
    assert Path(result["files"]["confusion_matrix.png"]).stat().st_size > 0


def test_semantic_lint(tmp_path: Path) -> None:
    manifest, pred = _semantic_set(tmp_path)
    geometry.write_label_png(pred / "a.png", np.zeros((5, 5), dtype=np.uint8))
    geometry.write_label_png(pred / "b.png", np.full((2, 2), 9, dtype=np.uint8))
    geometry.write_label_png(pred / "zzz.png", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DatakitError) as err:
        scoring.evaluate_predictions(pred, manifest, plots=False)
    text = str(err.value)
    assert "1 predicted mask(s) of the wrong size (e.g. a.png 5x5 for 2x3)" in text
    assert "no category id" in text and "b.png: 9" in text
    assert "1 mask file(s) whose stem matches no image of the manifest (e.g. zzz.png)" in text


def test_mask_pngs_against_a_manifest_without_class_maps_say_so(tmp_path: Path) -> None:
    """The message read "1 images with both a ground-truth class map and a predicted mask: none to
    score (e.g. 2)" for a manifest that simply has no class maps."""
    manifest, pred = _semantic_set(tmp_path)
    from datakit.manifest import load_manifest

    m = load_manifest(manifest)
    m.images["semantic_mask"] = pd.Series([None, None], dtype="string")
    save_manifest(m, manifest)
    with pytest.raises(DatakitError, match=r"has no class maps \(semantic masks\) nor instance masks to paint them "
                                           r"from, for its 2 images, to score mask PNGs against: ingest the data with "
                                           r"--format masks"):
        scoring.evaluate_predictions(pred, manifest, plots=False, task="semantic")


def test_localization(tmp_path: Path) -> None:
    images = pd.DataFrame({"id": ["i1", "i2", "i3", "i4"], "path": [f"images/{i}.png" for i in "1234"],
                           "status": "ok", "width": 100, "height": 100, "source_id": ["1", "2", "3", "4"]})
    annotations = pd.DataFrame({
        "id": ["1", "2", "3", "4"], "image_id": ["i1", "i2", "i3", "i4"], "category": ["cat", "dog", "cat", "dog"],
        "bbox_x": 10.0, "bbox_y": 10.0, "bbox_w": 20.0, "bbox_h": 20.0, "area": 400.0, "iscrowd": 0,
    })
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    save_manifest(Manifest(images=images, annotations=annotations, categories=categories, tasks=["detection"]),
                  tmp_path / "m")
    predictions = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},   # right, IoU 1
        {"image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 20], "score": 0.5},   # not the top one
        {"image_id": 2, "category_id": 2, "bbox": [20, 10, 20, 20], "score": 0.8},   # right, IoU 200/600
        {"image_id": 3, "category_id": 2, "bbox": [10, 10, 20, 10], "score": 0.7},   # wrong class, IoU 0.5
    ]                                                                                # image 4: none
    path = tmp_path / "p.json"
    path.write_text(json.dumps(predictions))
    result = scoring.evaluate_predictions(path, tmp_path / "m", task="localization", plots=False)
    assert result["accuracy"] == pytest.approx(2 / 4)
    assert result["box_iou"] == pytest.approx((1 + 1 / 3 + 0.5 + 0) / 4)
    assert result["acc_iou50"] == pytest.approx(1 / 4)
    assert result["counts"]["images_without_prediction"] == 1
    assert result["per_class"]["dog"]["accuracy"] == pytest.approx(1 / 2)
