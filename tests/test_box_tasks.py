"""Localization and detection: boxes follow resizing, bad input is named, negatives are kept and
counted, a class never seen in train is reported, and the light detector really learns."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from datakit import config as cfg
from datakit import ingest
from datakit.augmentation.resize import boxes_to_original
from datakit.data import Preprocess
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.tasks.boxdata import load_sample, prepare_boxes
from tests.conftest import fit_loss_parts

ROOT = Path(__file__).resolve().parent.parent / "sample_manifests"


def _white_box(image: np.ndarray) -> np.ndarray:
    """x0 y0 x1 y1 of the bright pixels."""
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "crop"])
@pytest.mark.parametrize("size", [(40, 96), (90, 30)])
def test_boxes_follow_resizing_and_map_back(tmp_path: Path, policy: str, size: tuple[int, int]) -> None:
    h, w = size
    image = np.zeros((h, w, 3), dtype=np.uint8)
    box = np.array([[w * 0.3, h * 0.35, w * 0.25, h * 0.3]])  # x y w h, inside the centre crop too
    x0, y0 = int(box[0, 0]), int(box[0, 1])
    x1, y1 = int(box[0, 0] + box[0, 2]), int(box[0, 1] + box[0, 3])
    image[y0:y1, x0:x1] = 255
    box = np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=np.float64)
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), image)
    pre = Preprocess(height=64, width=64, channels=3, resize=policy)
    resized, boxes, labels, original = load_sample(path, pre, box, np.array([2]))
    assert resized.shape == (64, 64, 3) and original == (h, w) and labels.tolist() == [2]
    moved = np.concatenate([boxes[0, :2], boxes[0, :2] + boxes[0, 2:]])
    # the box moved with the pixels: it frames the white rectangle of the resized image
    np.testing.assert_allclose(moved, _white_box(resized), atol=1.5)
    back = boxes_to_original(moved[None], h, w, 64, 64, policy)[0]
    np.testing.assert_allclose(back, [x0, y0, x1, y1], atol=2.0)


def test_detect_without_boxes_names_what_is_missing_and_the_task_that_fits() -> None:
    digits = load_manifest(ROOT / "digits-mini" / "manifest")
    with pytest.raises(DatakitError, match=r"task detection needs boxes .*\(task classification fits\)"):
        prepare_boxes(digits, cfg.resolve_config(None).data, 0, "detection", one_object=False)


def test_negatives_are_kept_and_counted_and_an_unseen_class_is_reported() -> None:
    m = load_manifest(ROOT / "shapes-mini" / "objects.manifest")
    ids = m.images["id"].astype(str).tolist()
    # 4 images without objects; every star is in test only
    m.annotations = m.annotations[~m.annotations["image_id"].isin(ids[:4])]
    test_ids = set(ids[4:10])
    m.images["split"] = ["test" if i in test_ids else ("val" if n % 5 == 0 else "train")
                         for n, i in enumerate(ids)]
    star_elsewhere = (m.annotations["category"] == "star") & ~m.annotations["image_id"].isin(test_ids)
    m.annotations = m.annotations[~star_elsewhere]
    data = prepare_boxes(m, cfg.resolve_config(None).data, 0, "detection", one_object=False)
    expected = len(set(ids) - set(m.annotations["image_id"].astype(str)))  # 4, and images that held only stars
    assert expected >= 4 and data.counts["negatives"] == expected
    assert any(f"{expected} images have no objects: kept as negatives" in n for n in data.notes)
    negatives = sum(len(b) == 0 for split in data.objects.values() for b, _ in split)
    assert negatives == expected
    if (m.annotations["category"] == "star").any():
        assert any("in test but never in train" in n and "star" in n for n in data.notes)


def test_localization_takes_the_largest_object() -> None:
    m = load_manifest(ROOT / "shapes-mini" / "objects.manifest")
    data = prepare_boxes(m, cfg.resolve_config(None).data, 0, "localization", one_object=True)
    ann = m.annotations.assign(area=m.annotations["bbox_w"] * m.annotations["bbox_h"])
    largest = ann.loc[ann.groupby("image_id")["area"].idxmax()].set_index("image_id")
    for name, frame in data.frames.items():
        for image_id, (boxes, labels) in zip(frame["id"], data.objects[name]):
            assert len(boxes) == 1
            np.testing.assert_allclose(boxes[0], largest.loc[image_id, ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]]
                                       .to_numpy(float))
            assert data.classes[labels[0]] == largest.loc[image_id, "category"]
    assert any("several objects" in n for n in data.notes)


def _squares(rng: np.random.Generator, sizes: tuple[int, int], hollow: bool = False,
             n: int = 16) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """``n`` 32x32 one-channel images with one white square each (class i % 2; with ``hollow`` the
    odd ones are outlines, so the class must be seen) and their targets."""
    images = torch.zeros(n, 1, 32, 32)
    targets = []
    for i in range(n):
        s = int(rng.integers(*sizes))
        x, y = int(rng.integers(0, 32 - s)), int(rng.integers(0, 32 - s))
        images[i, 0, y:y + s, x:x + s] = 1.0
        if hollow and i % 2:
            images[i, 0, y + 2:y + s - 2, x + 2:x + s - 2] = 0.0
        targets.append({"boxes": torch.tensor([[x, y, x + s, y + s]], dtype=torch.float32),
                        "labels": torch.tensor([i % 2])})
    return images, targets


def test_light_detector_learns_to_find_squares() -> None:
    """A few hundred steps on 16 images: the detector finds every square at IoU >= 0.5."""
    from torchvision.ops import box_iou

    from datakit.models import build_model

    torch.manual_seed(0)
    images, targets = _squares(np.random.default_rng(0), (7, 12))
    config = cfg.resolve_config(None, {"model.conv.filters": [16, 32], "model.head.dropout": 0.0}).model
    model = build_model(config, 1, 2, (32, 32), task="detection")
    first, last = fit_loss_parts(model, images, targets, steps=150)
    assert last["loss"] < first["loss"] / 4
    model.eval()
    found = model.decode(model(images))
    for det, target in zip(found, targets):
        top = det["boxes"][:1]
        assert len(top) and float(box_iou(top, target["boxes"])[0, 0]) >= 0.5
        assert int(det["labels"][0]) == int(target["labels"][0])



def test_localizer_learns_the_class_and_box_of_one_object() -> None:
    """A few hundred steps on 16 images: the localizer names each shape (filled or hollow square)
    and puts its box at IoU >= 0.6, through the task's own loss."""
    from torchvision.ops import box_iou

    from datakit.tasks.localization import LocalizationTask, cxcywh_to_xyxy

    torch.manual_seed(0)
    images, targets = _squares(np.random.default_rng(1), (9, 16), hollow=True)
    config = cfg.resolve_config(None, {"task": "localization", "model.conv.filters": [16, 32, 32],
                                       "model.head.dense": [32], "model.head.dropout": 0.0})
    task = LocalizationTask(config)
    task.num_classes = 2
    from datakit.models import build_model

    model = build_model(config.model, 1, 2, (32, 32), task="localization")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(200):
        loss, _, _, _ = task.step(model, (images, targets), torch.device("cpu"), train=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        found = task.detections(model, images)
    for det, target in zip(found, targets):
        assert int(det["labels"][0]) == int(target["labels"][0])
        assert float(box_iou(det["boxes"], target["boxes"])[0, 0]) >= 0.6
    torch.testing.assert_close(cxcywh_to_xyxy(torch.tensor([[0.5, 0.5, 0.2, 0.4]])),
                               torch.tensor([[0.4, 0.3, 0.6, 0.7]]))


TINY = {"epochs": 1, "batch_size": 8, "image_size": 32, "model.conv.filters": [8, 16], "train.threads": 1,
        "device": "cpu", "data.val_fraction": 0.2, "data.test_fraction": 0.2}


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    from datakit.training import train

    root = tmp_path_factory.mktemp("detect")
    shutil.copytree(ROOT / "shapes-mini", root / "sample")
    train(root / "sample" / "objects.manifest", None, root / "run", show_progress=False, task="detect", **TINY)
    return root / "run"


def test_predict_writes_rows_coco_yolo_and_drawings(detect_run: Path, tmp_path: Path) -> None:
    import json

    from datakit.prediction import predict

    images = detect_run.parent / "sample" / "images"
    table = predict(detect_run, images, output=tmp_path / "out", yolo=True, draw=True, min_score=0.0)
    assert list(table.columns) == ["path", "label", "score", "x", "y", "w", "h", "error"]
    assert table["error"].isna().all() and table["label"].notna().any()
    files = sorted(p for p in images.rglob("*.png"))
    assert table["path"].nunique() == len(files)
    boxes = table.dropna(subset=["label"])
    # boxes are in the images' own pixels (64 x 64), though the model saw them at 32 x 32
    assert (boxes["x"] >= 0).all() and (boxes["x"] + boxes["w"] <= 64 + 1e-6).all()
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(results) == len(boxes) and {"file_name", "category_id", "bbox", "score"} <= set(results[0])
    assert results[0]["file_name"] in {p.relative_to(images).as_posix() for p in files}
    labels = sorted((tmp_path / "out" / "labels").glob("*.txt"))
    assert {p.stem for p in labels} == {p.stem for p in files}  # one per image, named by its stem
    classes = json.loads((detect_run / "run.json").read_text())["classes"]
    assert (tmp_path / "out" / "classes.txt").read_text().split("\n")[:-1] == classes
    first = labels[0].read_text().split("\n")[0].split()
    assert len(first) == 6 and all(0.0 <= float(v) <= 1.0 for v in first[1:5])
    assert len(list((tmp_path / "out" / "draw").glob("*.png"))) == len(files)


def test_predict_error_line_counts_images_not_boxes(detect_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from typer.testing import CliRunner

    from datakit.cli import app

    folder = tmp_path / "images"
    shutil.copytree(detect_run.parent / "sample" / "images", folder)
    (folder / "bad.jpg").write_bytes(b"junk, not a JPEG")
    images = len(list(folder.rglob("*.png"))) + 1
    result = CliRunner().invoke(app, ["predict", str(detect_run), str(folder), "--min-score", "0", "--json"])
    assert result.exit_code == 1
    rows = len(json.loads(result.stdout))
    assert rows > images  # several boxes per image: rows are not images
    assert f"1 of {images} image(s) could not be predicted" in " ".join(result.stderr.split())


def test_predict_checks_the_runs_task(detect_run: Path) -> None:
    from datakit.prediction import predict

    images = detect_run.parent / "sample" / "images"
    with pytest.raises(DatakitError, match=r"is a detection run; it cannot predict task classification"):
        predict(detect_run, images, task="classify")


def test_classification_run_asked_for_detection_is_a_clear_error(tmp_path: Path) -> None:
    import shutil

    from datakit.prediction import predict
    from datakit.training import train

    shutil.copytree(ROOT / "digits-mini", tmp_path / "sample")
    train(tmp_path / "sample" / "manifest", None, tmp_path / "run", show_progress=False,
          **{**TINY, "image_size": 8, "model.conv.filters": [8]})
    with pytest.raises(DatakitError, match=r"is a classification run; it cannot predict task detection"):
        predict(tmp_path / "run", tmp_path / "sample" / "images", task="detect")
    with pytest.raises(DatakitError, match=r"write boxes; this is a classification run"):
        predict(tmp_path / "run", tmp_path / "sample" / "images", output=tmp_path / "out")


def test_eval_of_a_detection_run_writes_the_run_extras(detect_run: Path) -> None:
    import json

    from datakit.evaluation import evaluate

    result = evaluate(detect_run, split="test", show_progress=False)
    assert result["task"] == "detection" and result["split_source"] == "the run's splits.csv"
    for name in ("pr_curves.png", "confusion_matrix.png", "detections.png", "per_class.csv", "predictions.json"):
        assert Path(result["files"][name]).is_file(), name
    # the predictions it wrote score the same through `datakit eval --predictions`
    assert isinstance(json.loads(Path(result["files"]["predictions.json"]).read_text()), list)
    assert result["counts"]["ground_truth"] > 0 and 0.0 <= result["map50"] <= 1.0
    # the detection confusion matrix has a background row and column (missed boxes, false detections)
    cm = result["confusion_matrix"]
    classes = json.loads((detect_run / "run.json").read_text())["classes"]
    assert cm["labels"][-1] == "background" and set(classes) <= set(cm["labels"])
    matrix = np.asarray(cm["matrix"])
    assert matrix.shape == (len(cm["labels"]), len(cm["labels"]))
    true_axis = 0 if cm.get("rows") == "predicted" else 1  # every true box is counted once: found or missed
    assert matrix.sum(axis=true_axis)[:-1].sum() == result["counts"]["ground_truth"]
    for name in ("pr_curves.png", "confusion_matrix.png", "detections.png"):
        picture = cv2.imread(result["files"][name])
        assert picture is not None and min(picture.shape[:2]) > 100, name


@pytest.fixture(scope="module")
def split_manifest(detect_run: Path) -> Path:
    """The sample manifest with the run's own splits written in (what `datakit split` would give)."""
    from datakit.manifest import save_manifest

    m = load_manifest(detect_run.parent / "sample" / "objects.manifest")
    splits = pd.read_csv(detect_run / "splits.csv", dtype=str)
    m.images["split"] = m.images["id"].astype(str).map(dict(zip(splits["id"], splits["split"]))).astype("string")
    # beside the original, so the relative image root still leads to the images
    return save_manifest(m, detect_run.parent / "sample" / "split.manifest")


STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "ar1", "ar10", "ar100")


def _same_scores(a: dict, b: dict) -> None:
    keys = [k for k in STATS if k in a]
    assert keys and all(k in b for k in keys)
    for k in keys:
        if a[k] is None or (isinstance(a[k], float) and np.isnan(a[k])):
            assert b[k] is None or np.isnan(b[k]), k
        else:
            assert b[k] == pytest.approx(a[k], abs=1e-6), k


def test_predict_then_eval_predictions_round_trip_equals_eval_of_the_run(detect_run: Path, split_manifest: Path,
                                                                         tmp_path: Path) -> None:
    """`datakit predict RUN TEST-IMAGES -o OUT` then `datakit eval --predictions OUT/predictions.json
    --manifest M --split test` gives `datakit eval RUN`'s numbers; the results carry integer image ids."""
    import json

    from typer.testing import CliRunner

    from datakit.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["eval", str(detect_run), "--manifest", str(split_manifest), "--split", "test",
                               "--json"])
    assert done.exit_code == 0, done.output
    direct = json.loads(done.output)
    assert direct["counts"]["detections"] > 0
    m = load_manifest(split_manifest)
    test = m.images[m.images["split"] == "test"]
    files = [str(m.root() / p) for p in test["path"]]
    out = tmp_path / "out"
    done = runner.invoke(app, ["predict", str(detect_run), *files, "-o", str(out), "--min-score", "0.3",
                               "--manifest", str(split_manifest), "--json"])
    assert done.exit_code == 0, done.output
    table = pd.DataFrame(json.loads(done.output))
    assert (table["score"].dropna() >= 0.3).all()  # --min-score: the table keeps what scores at least 0.3
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == direct["counts"]["detections"]  # the JSON keeps every box (mAP needs them all)
    assert all(isinstance(r["image_id"], int) for r in results)
    # the ids are the ones datakit's COCO export writes for the test split file
    from datakit.convert import export

    export(split_manifest, "coco", tmp_path / "coco", images="none")
    exported = json.loads(next((tmp_path / "coco").rglob("instances_test.json")).read_text())
    by_name = {Path(im["file_name"]).name: im["id"] for im in exported["images"]}
    assert all(r["image_id"] == by_name[Path(r["file_name"]).name] for r in results)
    done = runner.invoke(app, ["predict", str(detect_run), *files, "-o", str(tmp_path / "yolo"), "--yolo", "--json"])
    assert done.exit_code == 0, done.output
    for predictions in (out / "predictions.json", Path(direct["predictions"]), tmp_path / "yolo" / "labels"):
        done = runner.invoke(app, ["eval", "--predictions", str(predictions), "--manifest", str(split_manifest),
                                   "--split", "test", "--json", "--no-plots"])
        assert done.exit_code == 0, done.output
        _same_scores(direct, json.loads(done.output))
    # the run folder as --manifest: its manifest has no splits, the run's splits.csv holds them
    assert load_manifest(detect_run.parent / "sample" / "objects.manifest").images["split"].isna().all()
    done = runner.invoke(app, ["eval", "--predictions", str(out / "predictions.json"), "--manifest", str(detect_run),
                               "--split", "test", "--json", "--no-plots"])
    assert done.exit_code == 0, done.output
    via_run = json.loads(done.output)
    _same_scores(direct, via_run)
    assert any("splits.csv" in note for note in via_run["notes"])


def test_ids_numbered_in_another_split_never_match_silently(detect_run: Path, split_manifest: Path,
                                                            tmp_path: Path) -> None:
    """Each split file numbers its images 1..N: a train image's id also exists in test. Predictions
    for every image scored on test are refused (exit 2), or with --lenient skipped, never matched."""
    import json

    from datakit.evaluation import evaluate
    from datakit.manifest import save_manifest
    from datakit.prediction import predict

    m = load_manifest(split_manifest)
    m.images["source_id"] = pd.NA  # not from COCO: the export numbers each split file 1..N
    split_manifest = save_manifest(m, split_manifest.parent / "numbered.manifest")
    images = detect_run.parent / "sample" / "images"
    predict(detect_run, images, output=tmp_path / "all", manifest=split_manifest)
    results = json.loads((tmp_path / "all" / "predictions.json").read_text())
    assert len({r["image_id"] for r in results}) < len({r["file_name"] for r in results})  # ids repeat across splits
    with pytest.raises(DatakitError, match="image_id and file_name name different images|not in the manifest"):
        evaluate(predictions=tmp_path / "all" / "predictions.json", manifest=split_manifest, split="test", plots=False)
    lenient = evaluate(predictions=tmp_path / "all" / "predictions.json", manifest=split_manifest, split="test",
                       plots=False, lenient=True)
    _same_scores(evaluate(detect_run, split_manifest, "test", show_progress=False), lenient)
    # ids alone over every split: each repeated one is named as such (no general note for other inputs)
    ids_only = tmp_path / "ids.json"
    ids_only.write_text(json.dumps([{k: v for k, v in r.items() if k != "file_name"} for r in results]))
    with pytest.raises(DatakitError, match=r"image_id repeats across splits .*pass --split, or name images by file_name"):
        evaluate(predictions=ids_only, manifest=split_manifest, plots=False)
    by_name = evaluate(predictions=tmp_path / "all" / "predictions.json", manifest=split_manifest, split="all",
                       plots=False, lenient=True)
    assert not any("repeat across splits" in note for note in by_name["notes"])


def test_predict_min_score_must_be_a_fraction(detect_run: Path) -> None:
    from datakit.prediction import predict

    with pytest.raises(DatakitError, match="--min-score must be between 0 and 1"):
        predict(detect_run, detect_run.parent / "sample" / "images", min_score=1.5)
    with pytest.raises(DatakitError, match="--yolo and --draw write into the -o/--output folder"):
        predict(detect_run, detect_run.parent / "sample" / "images", draw=True)


def test_detection_stops_early_on_map_and_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    """A model that cannot change (lr 1e-9, no batch norm) never improves val mAP after epoch 1:
    the run stops after `patience` epochs, best.pt is epoch 1, last.pt the last epoch; resume
    from an early-stopped run goes on with the count reset."""
    import json
    import shutil

    from datakit.checkpoint import read_checkpoint
    from datakit.training import train

    shutil.copytree(ROOT / "shapes-mini", tmp_path / "sample")
    manifest = tmp_path / "sample" / "objects.manifest"
    frozen = {**TINY, "epochs": 6, "optim.lr": 1e-9, "model.conv.batch_norm": False, "model.head.dropout": 0.0,
              "train.patience": 2, "schedule.name": "none"}
    result = train(manifest, None, tmp_path / "run", show_progress=False, task="detect", **frozen)
    assert result.status == "early_stopped" and result.epochs_run == 3
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["monitor"] == "val_map"
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["val_map"].nunique() == 1  # the same mAP every epoch: no improvement after the first
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["epoch"] == 1
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 3
    resumed = train(manifest, None, tmp_path / "run", resume=True, show_progress=False, epochs=4)
    assert resumed.epochs_run == 4 and pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("task", ["detection", "instance_segmentation"])
def test_grayscale_input_trains_and_evaluates(task: str, tmp_path: Path) -> None:
    """One input channel made CenterNet's decode fail (a view of a non-contiguous tensor) in the
    first validation pass, so an all-grayscale data set could not train a detector at all."""
    import shutil

    from datakit.training import train

    shutil.copytree(ROOT / "shapes-mini", tmp_path / "sample")
    result = train(tmp_path / "sample" / "objects.manifest", None, tmp_path / "run", show_progress=False, task=task,
                   **{**TINY, "data.channels": 1})
    assert result.test_metrics and (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_eval_of_a_localization_run_on_several_objects_scores_as_training_did(tmp_path: Path) -> None:
    """Training takes each image's largest box as its object; `eval RUN` refused the same run
    ("hold more than one object ... use --task detection")."""
    import shutil

    from datakit.evaluation import evaluate
    from datakit.training import train

    shutil.copytree(ROOT / "shapes-mini", tmp_path / "sample")
    manifest = tmp_path / "sample" / "objects.manifest"
    assert load_manifest(manifest).annotations["image_id"].value_counts().max() > 1
    result = train(manifest, None, tmp_path / "run", show_progress=False, task="localization", **TINY)
    metrics = evaluate(tmp_path / "run", split="test", show_progress=False)
    assert any("largest box is its object" in note for note in metrics["notes"])
    for key in ("accuracy", "box_iou"):
        assert metrics[key] == pytest.approx(result.test_metrics[key], abs=1e-6)
    # its predictions scored against the run (-m RUN) are localization too, with the same numbers
    again = evaluate(None, tmp_path / "run", split="test", predictions=metrics["predictions"], show_progress=False)
    assert again["task"] == "localization"
    for key in ("accuracy", "box_iou"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-6)


def test_yolo_predictions_for_images_sharing_a_stem_score_through_eval(detect_run: Path, tmp_path: Path) -> None:
    """predict --yolo names a/x.png and b/x.png a__x.txt and b__x.txt; eval --predictions matched
    neither ('stem matches no image'), though detection.md says it reads that folder."""
    import json
    import shutil

    from datakit.evaluation import evaluate
    from datakit.prediction import predict

    m = load_manifest(detect_run.parent / "sample" / "objects.manifest")
    picked = m.images.head(4)
    images, annotations = [], []
    for folder in ("a", "b"):
        for row in picked.itertuples():
            name = f"{folder}/{Path(row.path).name}"
            (tmp_path / "c" / "images" / folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(m.image_path(row.path), tmp_path / "c" / "images" / name)
            images.append({"id": len(images) + 1, "file_name": name, "width": int(row.width), "height": int(row.height)})
            for ann in m.annotations[m.annotations["image_id"] == row.id].itertuples():
                annotations.append({"id": len(annotations) + 1, "image_id": images[-1]["id"], "iscrowd": 0,
                                    "category_id": m.category_names.index(ann.category) + 1,
                                    "bbox": [ann.bbox_x, ann.bbox_y, ann.bbox_w, ann.bbox_h], "area": ann.bbox_w * ann.bbox_h})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(m.category_names)]
    (tmp_path / "c" / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                               "categories": categories}))
    ingest(tmp_path / "c", tmp_path / "c.manifest", format="coco", show_progress=False)
    predict(detect_run, tmp_path / "c" / "images", output=tmp_path / "out", yolo=True)
    labels = sorted(p.name for p in (tmp_path / "out" / "labels").iterdir())
    assert len(labels) == 8 and all("__" in name for name in labels)
    direct = evaluate(detect_run, tmp_path / "c.manifest", split="all", output=tmp_path / "eval", show_progress=False)
    scored = evaluate(None, tmp_path / "c.manifest", split="all", predictions=tmp_path / "out" / "labels",
                      show_progress=False)
    assert scored["counts"]["detections"] == direct["counts"]["detections"]
    assert scored["map"] == pytest.approx(direct["map"], abs=0.02)  # YOLO text rounds coordinates to 6 places
