"""Cached images kept on the training device (data.on_device): what the plan decides, that the batches
equal the DataLoader's, and that a run trained this way learns and resumes. On the CPU the same code
runs on CPU tensors (data.on_device=true); with a CUDA GPU the tests also run there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_TRAIN
from datakit import device_batches
from datakit.data import EpochSampler, ImageClassificationDataset, Preprocess
from datakit.errors import DatakitError
from datakit.online_augment import build_transform
from datakit.training import train

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _datasets(transform: object = None) -> dict[str, ImageClassificationDataset]:
    rng = np.random.default_rng(0)
    pre = Preprocess(height=12, width=10, channels=3, resize="stretch", mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25])
    images = {name: rng.integers(0, 256, (n, 12, 10, 3), dtype=np.uint8) for name, n in (("train", 50), ("val", 20))}
    return {name: ImageClassificationDataset([Path(f"{name}{i}.png") for i in range(len(x))],
                                             rng.integers(0, 3, len(x)), pre,
                                             transform if name == "train" else None, x)
            for name, x in images.items()}


def test_the_plan_keeps_the_dataloader_unless_asked_or_on_a_gpu() -> None:
    sets = _datasets(build_transform("light:fixed"))
    assert device_batches.plan(sets, torch.device("cpu"), False, "classification").splits == ()
    assert device_batches.plan(sets, torch.device("cpu"), "auto", "classification").splits == ()
    chosen = device_batches.plan(sets, torch.device("cpu"), True, "classification")
    assert chosen.splits == ("train", "val") and chosen.augment is not None
    assert "augmented there in batches" in chosen.note and "data.workers is not used" in chosen.note
    for preset in ("medium", "heavy:any"):  # every preset has a batched equivalent
        assert device_batches.plan(_datasets(build_transform(preset)), torch.device("cpu"), True,
                                   "classification").augment is not None


def test_auto_on_a_gpu_leaves_heavy_to_the_workers_until_timed() -> None:
    """heavy's colour jitter, blurs and noise cost several times light's kernels per batch, and have not been
    timed against DataLoader workers on a GPU: auto keeps the DataLoader for them and says so (the refusal
    comes before any CUDA call, so this runs on a CPU-only machine)."""
    plan = device_batches.plan(_datasets(build_transform("heavy")), torch.device("cuda"), "auto", "classification")
    assert plan.splits == () and plan.augment is None
    assert "ColorJitter, GaussNoise, GaussianBlur, MotionBlur, OneOf run batched on the device only with " \
           "data.on_device: true" in plan.note


def test_on_device_true_says_why_it_cannot() -> None:
    import albumentations as A

    with pytest.raises(DatakitError, match=r"data.on_device is true, but the augmentation cannot run batched .*"
                                           r"ElasticTransform has no batched equivalent.*; use auto or false"):
        device_batches.plan(_datasets(A.Compose([A.ElasticTransform()])), torch.device("cpu"), True,
                            "classification")
    uncached = _datasets()
    uncached["val"] = ImageClassificationDataset(uncached["val"].paths, [0] * 20, uncached["val"].preprocess)
    with pytest.raises(DatakitError, match=r"not cached in memory \(data.cache\)"):
        device_batches.plan(uncached, torch.device("cpu"), True, "classification")
    with pytest.raises(DatakitError, match="only classification"):
        device_batches.plan(_datasets(), torch.device("cpu"), True, "detection")


@pytest.mark.parametrize("device", DEVICES)
def test_batches_equal_the_dataloaders_in_the_same_order(device: str) -> None:
    """Without augmentation: the same images (normalized alike), labels and order as the DataLoader."""
    from datakit.data import make_loader

    for name, dataset in _datasets().items():
        sampler = EpochSampler(len(dataset), shuffle=name == "train", seed=3)
        sampler.set_epoch(2)
        ours = list(device_batches.DeviceBatches(dataset, sampler, 16, torch.device(device), None, seed=3))
        theirs = list(make_loader(dataset, 16, sampler, workers=0, pin_memory=False))
        assert len(ours) == len(theirs) == -(-len(dataset) // 16)
        for (x, y), (x_ref, y_ref) in zip(ours, theirs):
            assert x.device.type == device and y.device.type == device
            torch.testing.assert_close(x.cpu(), x_ref, atol=1e-5, rtol=0)
            assert torch.equal(y.cpu(), y_ref)


@pytest.mark.parametrize("device", DEVICES)
def test_augmented_batches_change_per_epoch_and_repeat_per_seed(device: str) -> None:
    sets = _datasets(build_transform("light"))
    augment = device_batches.plan(sets, torch.device("cpu"), True, "classification").augment
    sampler = EpochSampler(50, shuffle=False)
    batches = device_batches.DeviceBatches(sets["train"], sampler, 50, torch.device(device), augment, seed=-7)
    first, again = next(iter(batches))[0], next(iter(batches))[0]
    sampler.set_epoch(1)
    other = next(iter(batches))[0]
    plain = sets["train"].preprocess.to_tensor(sets["train"].images).to(device)
    assert torch.equal(first, again) and not torch.equal(first, other)
    changed = (first - plain).abs().flatten(1).amax(1) > 1e-4  # another device's division may differ in the last bit
    assert 0 < int(changed.sum()) < 50  # p < 1: some images are left as they are


@pytest.mark.parametrize("augment", ["light:fixed", "heavy:fixed"])  # heavy: noise drawn on the device too
@pytest.mark.parametrize("device", DEVICES)
def test_a_run_on_device_learns_and_resumes_as_if_never_stopped(digits_small: Path, tmp_path: Path,
                                                                device: str, augment: str) -> None:
    settings = {**TINY_TRAIN, "augment": augment, "data.on_device": True, "train.device": device}
    straight = train(digits_small, output=tmp_path / "straight", show_progress=False, epochs=6, **settings)
    assert any("kept on" in note and "augmented there" in note for note in straight.notes)
    # the derived worker count is kept in config.yaml (a resume may fall back), but said to be unused
    workers = {d["key"]: d for d in straight.derived}["data.workers"]
    assert workers["reason"].startswith(f"not used while the cached images are batched on {device}")
    assert straight.test_accuracy > 0.85
    train(digits_small, output=tmp_path / "resumed", show_progress=False, epochs=4, **settings)
    resumed = train(None, output=tmp_path / "resumed", resume=True, show_progress=False, epochs=6)
    assert resumed.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"], rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_keeps_the_images_on_a_gpu(digits_small: Path, tmp_path: Path) -> None:
    result = train(digits_small, output=tmp_path / "run", show_progress=False, epochs=2, **TINY_TRAIN)
    assert any("kept on cuda" in note for note in result.notes)


def test_the_gpu_epoch_benchmark_runs_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_epoch.py as a smoke run (the figures it prints are only meaningful on a GPU)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_epoch.py"), "--device", "cpu", "--epochs",
                           "2", "--rounds", "1", "--workers", "0"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no augmentation: datakit / bare loop = " in done.stdout
    assert "augmented: datakit / hand loop + workers = " in done.stdout
