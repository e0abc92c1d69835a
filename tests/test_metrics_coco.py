"""The evaluator equals pycocotools' COCOeval on generated data that hits its known pitfalls.

Ground truth goes through datakit's own COCO export (so image and category ids are matched as a
user's predictions would be), predictions are a COCO results file; every precision, recall and
score array and every summary statistic must equal pycocotools' to 1e-6.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datakit.convert import export
from datakit.manifest import save_manifest
from datakit.metrics import coco, scoring, synthetic


def _setup(tmp_path: Path, **kwargs) -> tuple[Path, Path, Path]:
    manifest, predictions = synthetic.detection_set(**kwargs)
    save_manifest(manifest, tmp_path / "manifest")
    export(tmp_path / "manifest", "coco", tmp_path / "coco", images="none")
    preds = tmp_path / "predictions.json"
    preds.write_text(json.dumps(predictions))
    return tmp_path / "manifest", tmp_path / "coco" / "annotations" / "instances.json", preds


def _pycocotools(gt_json: Path, preds: Path, iou_type: str, max_dets: list[int] | None = None) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        dt = gt.loadRes(str(preds))
        ev = COCOeval(gt, dt, iou_type)
        if max_dets is not None:
            ev.params.maxDets = max_dets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _same_arrays(reference: COCOeval, mine) -> None:
    for name in ("precision", "recall", "scores"):
        ref, got = reference.eval[name], getattr(mine, name)
        assert ref.shape == got.shape, name
        np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0, err_msg=name)


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_bbox_equals_pycocotools(tmp_path: Path, seed: int) -> None:
    manifest, gt_json, preds = _setup(tmp_path, n_images=25, n_boxes=160, n_predictions=420, seed=seed,
                                      n_categories=3 + seed, crowd_fraction=0.08)
    ref = _pycocotools(gt_json, preds, "bbox")
    result, extras = scoring.score(preds, manifest, plots=False)
    assert result["task"] == "detection"
    _same_arrays(ref, extras["bbox"])
    np.testing.assert_allclose(coco.as_pycocotools(result["bbox"]["stats"]), ref.stats, atol=1e-6, rtol=0)
    assert result["map"] == pytest.approx(ref.stats[0], abs=1e-6)
    assert result["map50"] == pytest.approx(ref.stats[1], abs=1e-6)
    assert result["map75"] == pytest.approx(ref.stats[2], abs=1e-6)
    assert result["ar100"] == pytest.approx(ref.stats[8], abs=1e-6)


@pytest.mark.parametrize("seed,with_boxes", [(0, True), (1, True), (2, False)])
def test_segm_equals_pycocotools(tmp_path: Path, seed: int, with_boxes: bool) -> None:
    manifest, gt_json, preds = _setup(tmp_path, n_images=12, n_boxes=70, n_predictions=160, seed=100 + seed,
                                      n_categories=4, masks=True, crowd_fraction=0.1)
    if not with_boxes:  # mask-only results: pycocotools takes the detection area from the mask
        preds.write_text(json.dumps([{k: v for k, v in p.items() if k != "bbox"} for p in json.loads(preds.read_text())]))
    result, extras = scoring.score(preds, manifest, plots=False)
    assert result["task"] == "instance"
    for iou_type in ("bbox", "segm"):
        ref = _pycocotools(gt_json, preds, iou_type)
        _same_arrays(ref, extras[iou_type])
        np.testing.assert_allclose(coco.as_pycocotools(result[iou_type]["stats"]), ref.stats, atol=1e-6, rtol=0)
    assert result["mask_map"] == pytest.approx(result["segm"]["stats"][0], abs=1e-12)


@pytest.mark.parametrize("max_dets", [[1, 10, 50], [5, 20, 300], [2, 10, 100, 200]])
def test_custom_max_dets_honoured_everywhere(tmp_path: Path, max_dets: list[int]) -> None:
    manifest, gt_json, preds = _setup(tmp_path, n_images=15, n_boxes=120, n_predictions=500, seed=7,
                                      overfull_images=3)
    ref = _pycocotools(gt_json, preds, "bbox", max_dets)
    result, extras = scoring.score(preds, manifest, max_dets=max_dets, plots=False)
    _same_arrays(ref, extras["bbox"])  # the arrays are right in pycocotools for any maxDets
    top = len(max_dets) - 1
    prec, rec = ref.eval["precision"], ref.eval["recall"]

    def mean(a):
        a = a[a > -1]
        return float(a.mean())

    # every AP is read at the largest maxDets, where pycocotools' summary hard-codes 100 or maxDets[2]
    assert result["map"] == pytest.approx(mean(prec[:, :, :, 0, top]), abs=1e-9)
    assert result["map50"] == pytest.approx(mean(prec[0, :, :, 0, top]), abs=1e-9)
    assert result["map_large"] == pytest.approx(mean(prec[:, :, :, 3, top]), abs=1e-9)
    for i, m in enumerate(max_dets):
        assert result[f"ar{m}"] == pytest.approx(mean(rec[:, :, 0, i]), abs=1e-9)
    if 100 not in max_dets:
        assert ref.stats[0] == -1  # what datakit fixes
        assert result["map"] is not None
    assert "datakit reads them all" in result["bbox"]["protocol"]["differs_from_pycocotools_summary"]


def test_na_with_reason_instead_of_minus_one(tmp_path: Path) -> None:
    manifest, predictions = synthetic.detection_set(n_images=6, n_boxes=20, n_predictions=30, seed=3, n_categories=3)
    # no ground truth is large: make every object tiny, keep one category without objects
    ann = manifest.annotations
    ann["bbox_w"], ann["bbox_h"] = 5.0, 5.0
    ann["area"] = 25.0
    ann.loc[:, "category"] = ann["category"].where(ann["category"] != "class_3", "class_1")
    save_manifest(manifest, tmp_path / "m")
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps(predictions))
    result, _ = scoring.score(preds, tmp_path / "m", plots=False)
    assert result["map_large"] is None and "large" in result["na"]["map_large"]
    assert result["ar_medium"] is None
    assert result["bbox"]["per_class"]["class_3"]["ap"] is None
    assert "no ground truth of this class" in result["bbox"]["per_class"]["class_3"]["note"]
    saved = json.loads((tmp_path / "p-eval" / "metrics.json").read_text())
    assert saved["metrics"]["map_large"] is None  # null in JSON, never -1
    assert all(v is None or 0 <= v <= 1 for v in saved["metrics"].values())
    assert saved["bbox"]["stats"][5] is None  # the COCOeval-order list too


def test_split_renumbered_ids_and_category_zero_match_the_export(tmp_path: Path) -> None:
    """No source ids (the export numbers each split file 1..N in path order) and a category with
    id 0 (the export shifts ids by one): predictions written against the exported val file match."""
    manifest, predictions = synthetic.detection_set(n_images=16, n_boxes=90, n_predictions=150, seed=11,
                                                    n_categories=3)
    manifest.categories = [{"id": i, "name": c["name"]} for i, c in enumerate(manifest.categories)]
    manifest.images = manifest.images.drop(columns=["source_id"]).assign(
        split=["train" if i % 2 else "val" for i in range(len(manifest.images))])
    save_manifest(manifest, tmp_path / "m")
    export(tmp_path / "m", "coco", tmp_path / "coco", images="none")
    val = json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())
    assert [c["id"] for c in val["categories"]] == [1, 2, 3]
    number_of = {im["file_name"]: im["id"] for im in val["images"]}
    shift = {c: i + 1 for i, c in enumerate(synthetic.SPARSE_IDS[:3])}  # synthetic ids -> export ids
    results = [{**p, "image_id": number_of[f"img{p['image_id']:06d}.png"], "category_id": shift[p["category_id"]]}
               for p in predictions if f"img{p['image_id']:06d}.png" in number_of]
    preds = tmp_path / "val.json"
    preds.write_text(json.dumps(results))
    ref = _pycocotools(tmp_path / "coco" / "annotations" / "instances_val.json", preds, "bbox")
    result, extras = scoring.score(preds, tmp_path / "m", split="val", plots=False)
    _same_arrays(ref, extras["bbox"])
    np.testing.assert_allclose(coco.as_pycocotools(result["bbox"]["stats"]), ref.stats, atol=1e-6, rtol=0)
    assert any("COCO id 1 (manifest id 0)" in note for note in result["notes"])


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_many_seeds(tmp_path: Path, seed: int) -> None:
    """Random sizes, category counts, crowd shares, overfull images, tie rates and maxDets."""
    rng = np.random.default_rng(seed)
    masks = seed % 8 == 0
    manifest, gt_json, preds = _setup(
        tmp_path, n_images=int(rng.integers(5, 40 if not masks else 10)), n_boxes=int(rng.integers(10, 300)),
        n_predictions=int(rng.integers(1, 600 if not masks else 150)), seed=1000 + seed,
        n_categories=int(rng.integers(1, 13)), crowd_fraction=float(rng.uniform(0, 0.2)),
        overfull_images=int(rng.integers(0, 3)) if not masks else 0, tie_scores=bool(rng.integers(0, 2)), masks=masks)
    max_dets = sorted({int(v) for v in rng.integers(1, 150, 3)}) if seed % 3 == 0 else None
    _, extras = scoring.score(preds, manifest, max_dets=max_dets, plots=False)
    for iou_type in ("bbox", "segm") if masks else ("bbox",):
        _same_arrays(_pycocotools(gt_json, preds, iou_type, max_dets), extras[iou_type])
