"""`datakit eval --predictions`: input lint (exit 2 / --lenient), matching rules, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.errors import DatakitError
from datakit.manifest import save_manifest
from datakit.metrics import scoring, synthetic

runner = CliRunner()


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, list[dict], Path]:
    manifest, predictions = synthetic.detection_set(n_images=12, n_boxes=60, n_predictions=90, seed=5)
    save_manifest(manifest, tmp_path / "m")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(predictions))
    return tmp_path / "m", predictions, path


def test_lint_counts_every_problem_and_exits_2(data, tmp_path: Path) -> None:
    manifest, predictions, _ = data
    bad = [dict(p) for p in predictions]
    bad[0]["image_id"] = 9999
    bad[1]["image_id"] = 9998
    bad[2]["category_id"] = 0
    bad[3]["category_id"] = 77
    bad[4]["bbox"] = [1.0, 2.0, float("nan"), 3.0]
    bad[5]["bbox"] = [1.0, 2.0, -4.0, 3.0]
    bad[6]["score"] = None
    bad[7]["id"] = bad[8]["id"] = 5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = runner.invoke(app, ["eval", "--predictions", str(path), "--manifest", str(manifest)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "2 prediction(s) for image ids that are not in the manifest (e.g. 9999, 9998)" in text
    assert "1 prediction(s) with category id 0" in text
    assert "category ids not in the manifest's category table (e.g. 77)" in text
    assert "NaN" in text and "negative width or height" in text and "without a finite numeric score" in text
    assert "duplicate annotation id (e.g. 5)" in text
    # --lenient: the same lines reported, those predictions skipped, the rest scored
    out = runner.invoke(app, ["eval", "--predictions", str(path), "--manifest", str(manifest), "--lenient", "--json",
                              "--no-plots"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert sum(entry["count"] for entry in report["skipped"]) == 8
    assert report["counts"]["detections"] == len(bad) - 8
    assert isinstance(report["map"], float)


def test_empty_predictions_file_is_an_error(data, tmp_path: Path) -> None:
    manifest, _, _ = data
    path = tmp_path / "empty.json"
    path.write_text("[]")
    result = runner.invoke(app, ["eval", "--predictions", str(path), "--manifest", str(manifest)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"{path}: the file holds no predictions (an empty list): nothing to score" in text
    assert "--lenient" not in text and "1 predictions" not in text
    result = scoring.evaluate_predictions(path, manifest, plots=False, lenient=True)
    assert result["map"] == 0.0 and result["counts"]["detections"] == 0


def test_image_id_given_as_a_string_is_named_as_a_type_problem(data, tmp_path: Path) -> None:
    manifest, predictions, _ = data
    bad = [dict(p) for p in predictions]
    bad[3]["image_id"] = str(bad[3]["image_id"])  # the image exists: only the type is wrong
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = runner.invoke(app, ["eval", "--predictions", str(path), "--manifest", str(manifest)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert ("1 prediction(s) whose image_id is not a number (image_id must be an integer) "
            f"(e.g. entry 3: found the string '{bad[3]['image_id']}')") in text
    assert "not in the manifest" not in text


def test_masks_of_the_wrong_size_are_flagged(tmp_path: Path) -> None:
    manifest, predictions = synthetic.detection_set(n_images=4, n_boxes=10, n_predictions=12, seed=1, masks=True)
    save_manifest(manifest, tmp_path / "m")
    predictions[0]["segmentation"]["size"] = [10, 10]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(predictions))
    with pytest.raises(DatakitError, match=r"1 prediction\(s\) with a mask of the wrong size \(10x10 for a 120x160"):
        scoring.evaluate_predictions(path, tmp_path / "m", plots=False)


@pytest.mark.parametrize("counts,problem", [
    ([1, 2, 3], "uncompressed RLE counts sum to 6, not height*width = 19200"),
    ("zzz", "compressed RLE counts are not valid"),
])
def test_malformed_rle_masks_are_refused_or_skipped(tmp_path: Path, counts, problem) -> None:
    manifest, predictions = synthetic.detection_set(n_images=4, n_boxes=10, n_predictions=12, seed=1, masks=True)
    save_manifest(manifest, tmp_path / "m")
    predictions[2]["segmentation"] = {"size": [120, 160], "counts": counts}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(predictions))
    result = runner.invoke(app, ["eval", "--predictions", str(path), "--manifest", str(tmp_path / "m"), "--no-plots"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"1 prediction(s) with an unusable RLE mask ({problem}" in text and "(e.g. entry 2 on" in text
    lenient = scoring.evaluate_predictions(path, tmp_path / "m", plots=False, lenient=True)
    assert [entry["count"] for entry in lenient["skipped"]] == [1]
    assert lenient["counts"]["detections"] == len(predictions) - 1


def test_file_name_matches_like_image_id(data, tmp_path: Path) -> None:
    manifest, predictions, path = data
    by_id = scoring.evaluate_predictions(path, manifest, plots=False)
    named = [{**{k: v for k, v in p.items() if k != "image_id"}, "file_name": f"img{p['image_id']:06d}.png"}
             for p in predictions]
    other = tmp_path / "named.json"
    other.write_text(json.dumps(named))
    by_name = scoring.evaluate_predictions(other, manifest, plots=False)
    assert by_name["metrics"] == by_id["metrics"]


def test_yolo_folder_matches_by_stem_and_class_index(data, tmp_path: Path) -> None:
    manifest, predictions, _ = data
    w, h = 160, 120
    index = {cid: i for i, cid in enumerate(synthetic.SPARSE_IDS[:6])}
    folder = tmp_path / "labels"
    folder.mkdir()
    converted = []
    for p in predictions:
        x, y, bw, bh = p["bbox"]
        line = [index[p["category_id"]], (x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h, p["score"]]
        with open(folder / f"img{p['image_id']:06d}.txt", "a") as fh:
            fh.write(" ".join(str(v) for v in line) + "\n")
        cx, cy, nw, nh = line[1:5]
        converted.append({**p, "bbox": [(cx - nw / 2) * w, (cy - nh / 2) * h, nw * w, nh * h]})
    (folder / "img000012.txt").write_text("")  # an image without predictions gets an empty file
    coco_path = tmp_path / "converted.json"
    coco_path.write_text(json.dumps(converted))
    yolo = scoring.evaluate_predictions(folder, manifest, plots=False)
    coco = scoring.evaluate_predictions(coco_path, manifest, plots=False)
    assert yolo["predictions_format"] == "yolo"
    assert yolo["metrics"] == pytest.approx(coco["metrics"], abs=1e-9)
    (folder / "unknown.txt").write_text("0 0.5 0.5 0.1 0.1 0.9\n")
    (folder / "img000002.txt").write_text("0 0.5 0.5 0.1 0.1\n9 0.5 0.5 0.1 0.1 0.5\n")
    with pytest.raises(DatakitError) as err:
        scoring.evaluate_predictions(folder, manifest, plots=False)
    assert "1 prediction file(s) whose stem matches no image of the manifest (e.g. unknown.txt)" in str(err.value)
    assert "without a confidence" in str(err.value) and "class index outside 0..5" in str(err.value)


def test_cli_writes_report_files_and_prints_protocol(data, tmp_path: Path) -> None:
    manifest, _, path = data
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", "--predictions", str(path), "-m", str(manifest), "-o", str(out),
                                 "--max-dets", "1,10,50"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "maxDets [1, 10, 50]" in text and "crowd regions ignored" in text and "ar50" in text
    for name in ("metrics.json", "pr_curves.png", "confusion_matrix.png", "per_class.csv", "worst_images.csv"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    labels = saved["confusion_matrix"]["labels"]
    assert labels[-1] == "background" and len(saved["confusion_matrix"]["matrix"]) == len(labels)
    assert saved["worst_images"][0]["errors"] >= saved["worst_images"][-1]["errors"]
    assert runner.invoke(app, ["eval", "--predictions", str(path)]).exit_code == 2  # no manifest
    assert runner.invoke(app, ["eval"]).exit_code == 2


def test_mask_predictions_against_box_only_truth_are_scored_as_boxes(tmp_path: Path) -> None:
    manifest, predictions = synthetic.detection_set(n_images=5, n_boxes=20, n_predictions=25, seed=4, masks=True)
    manifest.annotations = manifest.annotations.drop(columns=["segmentation_kind", "segmentation"])
    save_manifest(manifest, tmp_path / "m")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(predictions))
    result = scoring.evaluate_predictions(path, tmp_path / "m", plots=False)
    assert result["task"] == "detection" and "mask_map" not in result
    assert any("ground truth has none" in note for note in result["notes"])
    forced = scoring.evaluate_predictions(path, tmp_path / "m", plots=False, task="instance")
    assert forced["mask_map"] == 0.0


def test_yolo_polygons_score_as_instance_masks(tmp_path: Path) -> None:
    manifest, predictions = synthetic.detection_set(n_images=6, n_boxes=30, n_predictions=40, seed=8, masks=True,
                                                    n_categories=3)
    save_manifest(manifest, tmp_path / "m")
    w, h = 160, 120
    index = {cid: i for i, cid in enumerate(synthetic.SPARSE_IDS[:3])}
    folder = tmp_path / "labels"
    folder.mkdir()
    results = []
    for p in predictions:
        x, y, bw, bh = p["bbox"]
        poly = [x, y, x + bw, y, x + bw / 2, y + bh]          # a triangle in the box, in pixels
        norm = [v / (w if i % 2 == 0 else h) for i, v in enumerate(poly)]
        with open(folder / f"img{p['image_id']:06d}.txt", "a") as fh:
            fh.write(" ".join(str(v) for v in [index[p["category_id"]], *norm, p["score"]]) + "\n")
        back = [v * (w if i % 2 == 0 else h) for i, v in enumerate(norm)]
        results.append({"image_id": p["image_id"], "category_id": p["category_id"], "score": p["score"],
                        "segmentation": [back]})
    coco_path = tmp_path / "r.json"
    coco_path.write_text(json.dumps(results))
    yolo = scoring.evaluate_predictions(folder, tmp_path / "m", plots=False)
    coco = scoring.evaluate_predictions(coco_path, tmp_path / "m", plots=False)
    assert yolo["task"] == coco["task"] == "instance"
    assert yolo["mask_map"] == pytest.approx(coco["mask_map"], abs=1e-9)
    assert yolo["map"] == pytest.approx(coco["map"], abs=1e-9)


def test_api_functions_equal_the_cli(data, tmp_path: Path) -> None:
    import datakit

    manifest, _, path = data
    by_api = datakit.evaluate_predictions(path, manifest, plots=False, output=tmp_path / "a")
    by_evaluate = datakit.evaluate(predictions=path, manifest=manifest, plots=False, output=tmp_path / "b")
    out = runner.invoke(app, ["eval", "--predictions", str(path), "-m", str(manifest), "--no-plots", "--json",
                              "-o", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    assert by_api["metrics"] == by_evaluate["metrics"] == json.loads(out.output)["metrics"]
    with pytest.raises(DatakitError, match="apply to predictions only"):
        datakit.evaluate(tmp_path, max_dets=[1, 10])


def test_yolo_predictions_on_a_renamed_export_find_their_images(tmp_path: Path) -> None:
    """a.jpg and a.png export to YOLO as a.jpg.jpg and a.png.png; a model run on that export writes
    a.jpg.txt and a.png.txt, which matched no image (their stem is not 'a')."""
    from datakit import export, ingest
    from tests.formats_data import two_image_coco

    ingest(two_image_coco(tmp_path / "src"), tmp_path / "m", format="coco", show_progress=False)
    export(tmp_path / "m", "yolo", tmp_path / "yolo")
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for labels in sorted((tmp_path / "yolo" / "labels").rglob("*.txt")):
        (predictions / labels.name).write_text("".join(f"{line} 0.9\n" for line in labels.read_text().splitlines()))
    assert sorted(p.name for p in predictions.iterdir()) == ["a.jpg.txt", "a.png.txt"]
    result = scoring.evaluate_predictions(predictions, tmp_path / "m", plots=False)
    assert result["counts"]["detections"] == 2 and result["map"] == pytest.approx(1.0)
