"""The classification data path: decode, resize, normalize, augment, sample, batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datakit import config as cfg
from datakit.data import (
    EpochSampler,
    ImageClassificationDataset,
    Preprocess,
    balanced_class_weights,
    balanced_sample_weights,
    channel_stats,
    decode_all,
    prepare_classification,
    read_image,
    resize_image,
)
from datakit.errors import DatakitError
from datakit.manifest import load_manifest
from datakit.online_augment import build_transform
from tests.conftest import write_exif_rotated_jpeg, write_png


def test_decode_gives_rgb_or_gray_as_displayed(tmp_path: Path) -> None:
    rotated = write_exif_rotated_jpeg(tmp_path / "r.jpg", width=40, height=20, orientation=6)
    assert read_image(rotated, 3).shape == (40, 20, 3)  # EXIF says portrait
    assert read_image(rotated, 1).shape == (40, 20, 1)
    png = write_png(tmp_path / "p.png", width=6, height=4)
    from PIL import Image

    expected = np.asarray(Image.open(png).convert("RGB"))
    assert np.array_equal(read_image(png, 3), expected)  # RGB order, not OpenCV's BGR
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(DatakitError, match=r"bad.png: cannot decode image"):
        read_image(tmp_path / "bad.png", 3)


def test_resize_policies() -> None:
    image = np.full((20, 40, 3), 200, dtype=np.uint8)
    assert resize_image(image, 16, 16, "stretch").shape == (16, 16, 3)
    boxed = resize_image(image, 16, 16, "letterbox")
    assert boxed.shape == (16, 16, 3)
    assert boxed[0, 8].sum() == 0 and boxed[8, 8, 0] == 200  # padded above, image in the middle
    cropped = resize_image(image, 16, 16, "crop")
    assert cropped.shape == (16, 16, 3) and (cropped == 200).all()
    gray = np.zeros((10, 10, 1), dtype=np.uint8)
    assert resize_image(gray, 5, 7, "stretch").shape == (5, 7, 1)


def test_channel_stats_match_numpy() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    scaled = images.reshape(-1, 3) / 255.0
    assert np.allclose(mean, scaled.mean(0)) and np.allclose(std, scaled.std(0))
    assert channel_stats(np.full((2, 4, 4, 1), 7, dtype=np.uint8))[1] == [1.0]  # constant channel: no divide by 0


def test_batches_equal_single_items_and_are_normalized(digits_small: Path) -> None:
    manifest = load_manifest(digits_small)
    data = prepare_classification(manifest, cfg.DataConfig(), seed=0)
    frame = data.frames["train"]
    paths = [data.root / p for p in frame["path"][:20]]
    pre = Preprocess(height=16, width=16, channels=1, resize="stretch")
    images = decode_all(paths, pre)
    pre.mean, pre.std = channel_stats(images)
    cached = ImageClassificationDataset(paths, frame["target"][:20], pre, images=images)
    streamed = ImageClassificationDataset(paths, frame["target"][:20], pre)
    x, y = cached.__getitems__([3, 1, 7])
    x2, y2 = streamed.__getitems__([3, 1, 7])
    assert x.shape == (3, 1, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x, x2) and torch.equal(y, y2)
    assert torch.allclose(cached[1][0], x[1])
    everything = cached.__getitems__(list(range(20)))[0]
    assert abs(float(everything.mean())) < 1e-4 and abs(float(everything.std()) - 1) < 1e-2


def test_labelled_splits_use_the_manifest_category_order(digits_small: Path) -> None:
    manifest = load_manifest(digits_small)
    data = prepare_classification(manifest, cfg.DataConfig(val_fraction=0.2, test_fraction=0.1), seed=0)
    assert data.classes == [str(d) for d in range(10)]
    sizes = {name: len(f) for name, f in data.frames.items()}
    assert sizes == {"train": 420, "val": 120, "test": 60}
    table = data.split_table()
    assert table["id"].is_unique and len(table) == 600
    for frame in data.frames.values():
        assert (frame["label"].map(data.classes.index) == frame["target"]).all()


def test_a_class_with_no_val_or_test_images_is_named(tmp_path: Path) -> None:
    """A 20:1 set's 2 minority images both go to train: val and test then say nothing about that class."""
    from datakit.ingest import ingest

    for i in range(40):
        write_png(tmp_path / "src" / "major" / f"{i}.png", seed=i)
    for i in range(2):
        write_png(tmp_path / "src" / "minor" / f"{i}.png", seed=100 + i)
    ingest(tmp_path / "src", tmp_path / "m", show_progress=False)
    data = prepare_classification(load_manifest(tmp_path / "m"), cfg.DataConfig(), seed=0)
    assert set(data.frames["val"]["label"]) == {"major"}
    assert any(n.startswith("class(es) with no val images: minor (2 images in all)") for n in data.notes)
    assert any(n.startswith("class(es) with no test images: minor") for n in data.notes)


def test_copies_of_one_file_explain_an_empty_validation_split(tmp_path: Path) -> None:
    from datakit.ingest import ingest

    for label, seed in (("a", 1), ("b", 2)):
        for i in range(6):
            write_png(tmp_path / "src" / label / f"{i}.png", seed=seed)  # six copies of one image
    ingest(tmp_path / "src", tmp_path / "m", show_progress=False)
    with pytest.raises(DatakitError, match=r"the 12 usable images hold only 2 distinct files, and copies of one"):
        prepare_classification(load_manifest(tmp_path / "m"), cfg.DataConfig(), seed=0)


def test_augmentation_spec_forms_and_errors() -> None:
    spec = ["HorizontalFlip", {"Affine": {"rotate": [-10, 10], "p": 1.0}}, {"name": "GaussNoise", "p": 0.5}]
    transform = build_transform(spec, seed=0)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert transform(image=image)["image"].shape == (16, 16, 3)
    assert build_transform([], seed=0) is None
    with pytest.raises(DatakitError, match=r"augment\[0\]: unknown transform 'HorizontalFlp'; did you mean 'HorizontalFlip'\?"):
        build_transform(["HorizontalFlp"])
    with pytest.raises(DatakitError, match=r"augment\[0\]: Affine: bad parameters"):
        build_transform([{"Affine": {"rotate": "a lot"}}])


def test_augmentation_changes_training_images_only_through_the_transform() -> None:
    pre = Preprocess(height=8, width=8, channels=1, resize="stretch", mean=[0.5], std=[0.5])
    images = np.arange(2 * 64, dtype=np.uint8).reshape(2, 8, 8, 1)
    flip = build_transform([{"HorizontalFlip": {"p": 1.0}}], seed=0)
    dataset = ImageClassificationDataset([Path("a"), Path("b")], [0, 1], pre, flip, images=images)
    x, _ = dataset.__getitems__([0])
    expected = pre.to_tensor(images[:1, :, ::-1].copy())
    assert torch.allclose(x, expected)


def test_epoch_sampler_shards_cover_everything_once_and_repeat_by_epoch() -> None:
    shards = [EpochSampler(10, rank=r, world=3, seed=1) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    drawn = [list(s) for s in shards]
    assert {len(d) for d in drawn} == {4}  # padded to equal lengths so DDP never waits
    assert set(sum(drawn, [])) == set(range(10))
    again = EpochSampler(10, rank=0, world=3, seed=1)
    again.set_epoch(4)
    assert list(again) == drawn[0]
    again.set_epoch(5)
    assert list(again) != drawn[0]
    evaluation = [list(EpochSampler(10, shuffle=False, rank=r, world=3, pad=False)) for r in range(3)]
    assert sorted(sum(evaluation, [])) == list(range(10))


def test_balanced_sampler_draws_classes_equally_and_weights_are_inverse_frequency() -> None:
    targets = np.array([0] * 90 + [1] * 10)
    sampler = EpochSampler(100, weights=balanced_sample_weights(targets, 2), seed=0)
    drawn = np.concatenate([targets[list(sampler)] for _ in range(20) if sampler.set_epoch(_) is None])
    assert 0.45 < drawn.mean() < 0.55
    weights = balanced_class_weights(targets, 3)
    assert torch.allclose(weights, torch.tensor([100 / (2 * 90), 100 / (2 * 10), 0.0]))


def test_an_augmentation_that_changes_the_image_size_is_refused_with_both_sizes() -> None:
    """One check serves every task's dataset: classification, boxes, instance and semantic masks."""
    import numpy as np

    from datakit.data import Preprocess
    from datakit.errors import DatakitError

    preprocess = Preprocess(height=32, width=24, channels=1, resize="stretch")
    assert preprocess.check_augmented(np.zeros((32, 24), np.uint8)).shape == (32, 24, 1)
    with pytest.raises(DatakitError, match=r"augment changed the image size to 30x24; training needs 32x24 "
                                           r"\(set the transform's size to match\)"):
        preprocess.check_augmented(np.zeros((30, 24, 1), np.uint8))


def test_every_task_dataset_gets_its_own_augmentation_stream_per_worker() -> None:
    """DataLoader workers start as copies of one dataset: without a reseed each would draw the same
    augmentations. Box, mask and instance datasets are reseeded like the classification one."""
    import numpy as np

    from datakit.augmentation.specs import resolve
    from datakit.data import EpochSampler, Preprocess, make_loader
    from datakit.tasks.maskdata import MaskDataset

    preprocess = Preprocess(height=16, width=16, channels=1, resize="stretch")
    images = np.full((4, 16, 16, 1), 128, np.uint8)  # four identical images: only augmentation differs
    transform = resolve([{"RandomBrightnessContrast": {"brightness_limit": 0.4, "p": 1.0}}],
                        task="semantic_segmentation", seed=0).compose
    dataset = MaskDataset(images, np.zeros((4, 16, 16), np.uint8), preprocess, transform)
    loader = make_loader(dataset, 1, EpochSampler(4, shuffle=False), workers=2, pin_memory=False)
    batches = [x for x, _ in loader]  # workers take turns: batches 0 and 2 from one, 1 and 3 from the other
    assert not torch.equal(batches[0], batches[1])


def test_worker_processes_start_after_opencv_has_used_its_thread_pool() -> None:
    """A worker forked from a process whose OpenCV thread pool is running used to hang on its first
    OpenCV call; make_loader sets OpenCV to one thread first. Run in a child process with a
    timeout, so a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    script = """
import cv2, numpy as np
from datakit.augmentation.specs import resolve
from datakit.data import EpochSampler, Preprocess, make_loader
from datakit.tasks.maskdata import MaskDataset
big = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
for _ in range(3):
    cv2.warpAffine(big, np.float32([[1, 0.1, 3], [0.1, 1, 2]]), (1024, 1024))  # OpenCV's pool now runs
transform = resolve([{"RandomBrightnessContrast": {"p": 1.0}}], task="semantic_segmentation", seed=0).compose
dataset = MaskDataset(np.full((4, 16, 16, 1), 128, np.uint8), np.zeros((4, 16, 16), np.uint8),
                      Preprocess(height=16, width=16, channels=1, resize="stretch"), transform)
print(len(list(make_loader(dataset, 1, EpochSampler(4, shuffle=False), workers=2, pin_memory=False))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4"
