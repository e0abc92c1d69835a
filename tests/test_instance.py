"""Instance segmentation (task instance): masks follow the pixels as RLE through resizing and
augmentation, bad input is named, negatives are kept, the light model really learns, every
torchvision Mask R-CNN trains, and predict writes RLE COCO results that the evaluator scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import datakit
from datakit import config as cfg
from datakit.data import Preprocess
from datakit.errors import DatakitError
from datakit.manifest import load_manifest, save_manifest
from datakit.tasks import instancedata
from tests.conftest import fit_loss_parts

ROOT = Path(__file__).resolve().parent.parent / "sample_manifests"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated shapes, 48 images of 64 px with 1-3 objects each (COCO with RLE masks), ingested."""
    root = tmp_path_factory.mktemp("instance-shapes")
    datakit.sample("shapes", root / "data", count=48, size=64, objects=(1, 3), seed=3, show_progress=False)
    datakit.ingest(root / "data", root / "manifest", format="coco", workers=1, show_progress=False)
    return root / "manifest"


def _truth_masks(manifest_path: Path) -> dict[str, np.ndarray]:
    """Image id -> (N, H, W) masks of its objects, from the manifest's RLEs."""
    manifest = load_manifest(manifest_path)
    out = {}
    for image_id, group in manifest.annotations.groupby("image_id"):
        row = manifest.images.set_index("id").loc[image_id]
        segs = list(zip(group["segmentation_kind"], group["segmentation"]))
        out[str(image_id)] = instancedata.segmentation_masks(segs, int(row["height"]), int(row["width"]),
                                                             manifest.root())
    return out


def _geometry(mask: np.ndarray, height: int, width: int, policy: str) -> np.ndarray:
    """A mask through a resize policy, written out with OpenCV: the expected result."""
    import cv2

    from datakit.augmentation.resize import scaled_size

    out_h, out_w = scaled_size(*mask.shape, height, width, policy)
    scaled = cv2.resize(mask, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    if policy == "letterbox":
        canvas = np.zeros((height, width), np.uint8)
        top, left = (height - out_h) // 2, (width - out_w) // 2
        canvas[top:top + out_h, left:left + out_w] = scaled
        return canvas.astype(bool)
    if policy == "crop":
        top, left = (out_h - height) // 2, (out_w - width) // 2
        return scaled[top:top + height, left:left + width].astype(bool)
    return scaled.astype(bool)


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "crop"])
def test_masks_follow_resizing_as_rle(shapes: Path, policy: str) -> None:
    """Resized to 48 x 32 with each policy: each RLE mask equals the original mask put through the
    same geometry (nearest neighbour), and each box is its mask's tight box."""
    from datakit.augmentation.targets import mask_boxes

    manifest = load_manifest(shapes)
    masks = _truth_masks(shapes)
    pre = Preprocess(height=48, width=32, channels=3, resize=policy)
    checked = 0
    for image_id, group in list(manifest.annotations.groupby("image_id"))[:6]:
        path = manifest.images.set_index("id").loc[image_id, "path"]
        boxes = group[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(float)
        segs = list(zip(group["segmentation_kind"], group["segmentation"]))
        image, new_boxes, labels, rles, empty = instancedata.load_instances(
            manifest.root() / path, pre, boxes, np.zeros(len(boxes), dtype=np.int64), segs, manifest.root())
        assert image.shape == (48, 32, 3) and empty == 0
        assert len(rles) == len(new_boxes) == len(labels)
        dense = instancedata.decode(rles, 48, 32)
        np.testing.assert_allclose(mask_boxes(dense)[0], new_boxes)
        # the masks are where the shapes' pixels went: each original mask scaled (nearest), padded or cropped here
        expected = [e for e in (_geometry(m, 48, 32, policy) for m in masks[str(image_id)]) if e.any()]
        assert len(expected) == len(dense)
        for got, want in zip(dense, expected):
            iou = (got.astype(bool) & want).sum() / max((got.astype(bool) | want).sum(), 1)
            assert iou > 0.9, (policy, iou)
            checked += 1
    assert checked


def test_masks_follow_augmentation_and_decode_per_batch(shapes: Path) -> None:
    """A horizontal flip moves image, masks and boxes together; targets hold dense masks only per batch."""
    import albumentations as A

    from datakit.augmentation.targets import compose, mask_boxes

    manifest = load_manifest(shapes)
    data = instancedata.prepare_instances(manifest, cfg.resolve_config(None).data, 0, "instance_segmentation")
    pre = Preprocess(height=64, width=64, channels=3, resize="stretch")
    frame, objects, segs = data.frames["train"], data.objects["train"], data.segmentations["train"]
    loaded = [instancedata.load_instances(data.root / p, pre, b, lab, s, data.root)
              for p, (b, lab), s in zip(frame["path"][:8], objects[:8], segs[:8])]
    images = np.stack([x[0] for x in loaded])
    stored = [(x[1], x[2], x[3]) for x in loaded]
    assert all(isinstance(r["counts"], bytes) for _, _, rles in stored for r in rles)  # kept as RLE
    flipped = instancedata.InstanceDataset(images, stored, pre, compose([A.HorizontalFlip(p=1.0)]))
    plain = instancedata.InstanceDataset(images, stored, pre)
    x_flip, t_flip = flipped.__getitems__(list(range(8)))
    x, t = plain.__getitems__(list(range(8)))
    assert torch.equal(x_flip, torch.flip(x, dims=[3]))
    for a, b in zip(t, t_flip):
        assert a["masks"].dtype == torch.uint8 and a["masks"].shape[1:] == (64, 64)
        assert torch.equal(b["masks"], torch.flip(a["masks"], dims=[2]))
        np.testing.assert_allclose(b["boxes"].numpy()[:, [0, 2]], 64 - a["boxes"].numpy()[:, [2, 0]])
        boxes, _ = mask_boxes(b["masks"].numpy())
        np.testing.assert_allclose(boxes[:, :2] + boxes[:, 2:], b["boxes"].numpy()[:, 2:])


def test_instance_without_masks_names_what_is_missing_and_the_task_that_fits(shapes: Path) -> None:
    manifest = load_manifest(shapes)
    manifest.annotations["segmentation_kind"] = pd.NA
    manifest.annotations["segmentation"] = pd.NA
    with pytest.raises(DatakitError, match=r"task instance_segmentation needs instance masks .* and none has one; "
                                           r"it has \d+ boxes \(task detection fits\)"):
        instancedata.prepare_instances(manifest, cfg.resolve_config(None).data, 0, "instance_segmentation")
    digits = load_manifest(ROOT / "digits-mini" / "manifest")
    with pytest.raises(DatakitError, match=r"needs instance masks.*image labels \(task classification fits\)"):
        instancedata.prepare_instances(digits, cfg.resolve_config(None).data, 0, "instance_segmentation")


def test_negatives_kept_and_empty_masks_reported(shapes: Path, tmp_path: Path) -> None:
    from datakit.training import train

    manifest = load_manifest(shapes)
    ann = manifest.annotations
    images = sorted(ann["image_id"].unique())
    # two images lose their objects (negatives); one object gets an empty mask
    ann = ann[~ann["image_id"].isin(images[:2])].reset_index(drop=True)
    empty = json.dumps({"size": [64, 64], "counts": "PP4"})  # 4096 zeros: no pixel
    ann.loc[0, "segmentation"] = empty
    manifest.annotations = ann
    data = instancedata.prepare_instances(manifest, cfg.resolve_config(None).data, 0, "instance_segmentation")
    assert data.counts["negatives"] == 2 and any("2 images have no objects" in n for n in data.notes)
    save_manifest(manifest, shapes.parent / "edited")  # next to the original: the same image root
    result = train(shapes.parent / "edited", None, tmp_path / "run", show_progress=False, task="instance", epochs=1,
                   image_size=32, **{"model.conv.filters": [8, 16], "train.threads": 1, "device": "cpu",
                                     "data.val_fraction": 0.2, "data.test_fraction": 0.0})
    assert any("empty mask and are not used" in n for n in result.notes)
    # only empty masks: nothing to learn, said clearly
    manifest.annotations["segmentation"] = empty
    save_manifest(manifest, shapes.parent / "blank")
    with pytest.raises(DatakitError, match="no train image has an object with a non-empty mask"):
        train(shapes.parent / "blank", None, tmp_path / "run2", show_progress=False, task="instance", epochs=1,
              image_size=32, **{"model.conv.filters": [8], "train.threads": 1, "device": "cpu"})


@pytest.mark.slow  # 200 full steps: 215 CPU-seconds measured on the contended 2-core machine
def test_light_instance_model_learns_masks() -> None:
    """A few hundred steps on 12 generated images (squares and discs): the light model's masks of
    them reach mask mAP50 well above 0 (near 1) under the task's own COCO evaluator."""
    import cv2

    from datakit.models import build_model
    from datakit.tasks.instance import InstanceEvaluator

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = torch.zeros(12, 1, 32, 32)
    targets = []
    for i in range(12):
        canvas = np.zeros((32, 32), np.uint8)
        s = int(rng.integers(6, 11))
        x, y = int(rng.integers(s, 32 - s)), int(rng.integers(s, 32 - s))
        if i % 2:
            cv2.rectangle(canvas, (x - s // 2, y - s // 2), (x + s // 2, y + s // 2), 1, -1)
        else:
            cv2.circle(canvas, (x, y), s // 2 + 1, 1, -1)
        images[i, 0] = torch.from_numpy(canvas).float()
        ys, xs = np.nonzero(canvas)
        targets.append({"boxes": torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32),
                        "labels": torch.tensor([i % 2]), "masks": torch.from_numpy(canvas)[None]})
    config = cfg.resolve_config(None, {"model.conv.filters": [16, 32], "model.head.dropout": 0.0}).model
    model = build_model(config, 1, 2, (32, 32), task="instance_segmentation")
    first, last = fit_loss_parts(model, images, targets, steps=200)
    assert last["mask"] < first["mask"] / 3
    model.eval()
    found = model.decode(model(images))
    assert all(d["masks"].shape[1:] == (32, 32) for d in found)
    evaluator = InstanceEvaluator(2)
    evaluator.update(found, targets)
    metrics = evaluator.compute()
    assert metrics["mask_map50"] >= 0.6 and metrics["map50"] >= 0.6, metrics


TINY = {"epochs": 1, "batch_size": 8, "image_size": 32, "model.conv.filters": [8, 16], "train.threads": 1,
        "device": "cpu", "data.val_fraction": 0.2, "data.test_fraction": 0.2}


@pytest.fixture(scope="module")
def instance_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datakit.training import train

    root = tmp_path_factory.mktemp("instance")
    shutil.copytree(ROOT / "shapes-mini", root / "sample")
    train(root / "sample" / "objects.manifest", None, root / "run", show_progress=False, task="instance",
          **{**TINY, "epochs": 2})
    return root / "run"


def test_predict_writes_rle_results_the_evaluator_scores(instance_run: Path, tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    from datakit.evaluation import evaluate
    from datakit.prediction import predict

    sample = instance_run.parent / "sample"
    images = sample / "images"
    table = predict(instance_run, images, output=tmp_path / "out", draw=True, min_score=0.0, task="instance")
    assert table["error"].isna().all() and table["label"].notna().any()
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert results and {"file_name", "category_id", "bbox", "score", "segmentation"} <= set(results[0])
    for r in results[:20]:  # valid compressed RLE on the image's own pixels (64 x 64; the model saw 32 x 32)
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        assert r["segmentation"]["size"] == [64, 64] and mask_utils.decode(rle).shape == (64, 64)
    assert len(list((tmp_path / "out" / "draw").glob("*.png"))) == len(list(images.rglob("*.png")))
    scored = evaluate(predictions=tmp_path / "out" / "predictions.json", manifest=sample / "objects.manifest",
                      task="instance", show_progress=False, output=tmp_path / "scored")
    assert {"mask_map", "mask_map50", "map", "map50"} <= set(scored["metrics"])
    assert isinstance(scored["metrics"]["mask_map50"], float)
    # eval of the run itself scores the same way (segm and bbox) and draws the instance overlays
    run_scored = evaluate(instance_run, split="all", show_progress=False)
    assert run_scored["task"] == "instance_segmentation" and "segm" in run_scored
    assert run_scored["mask_map50"] == pytest.approx(scored["metrics"]["mask_map50"], abs=1e-9)
    assert Path(run_scored["files"]["instances.png"]).is_file()


def test_predict_of_a_detection_run_as_instance_is_a_clear_error(instance_run: Path) -> None:
    from datakit.prediction import predict

    with pytest.raises(DatakitError, match="is a instance_segmentation run; it cannot predict task detection"):
        predict(instance_run, instance_run.parent / "sample" / "images", task="detect")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v3_large_fpn"])
def test_torchvision_mask_rcnn_trains_one_epoch(name: str, tmp_path: Path) -> None:
    from datakit.training import train

    shutil.copytree(ROOT / "shapes-mini", tmp_path / "sample")
    result = train(tmp_path / "sample" / "objects.manifest", None, tmp_path / "run", show_progress=False,
                   task="instance", **{**TINY, "model.name": name, "image_size": 64, "batch_size": 4})
    assert result.epochs_run == 1 and result.status == "completed"
    assert np.isfinite(result.history[0]["train_loss"])
    assert set(result.test_metrics) >= {"mask_map", "mask_map50", "map", "map50"}
