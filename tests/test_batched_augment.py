"""The batched (device-side) augmentation against albumentations itself: same pixels for the same
parameters, same distributions for random ones. Runs on the CPU, and on CUDA when there is one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datakit.augmentation.batched import TRANSLATIONS, affine_matrices, batched_equivalent

A = pytest.importorskip("albumentations")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# every translated transform, with parameters that leave nothing to chance (p=1, one-point ranges)
FIXED = {
    "HorizontalFlip": [A.HorizontalFlip(p=1)],
    "VerticalFlip": [A.VerticalFlip(p=1)],
    "Affine": [
        A.Affine(rotate=(7, 7), scale=(1.1, 1.1), translate_px=(1, 1), p=1),
        A.Affine(rotate=(-20, -20), scale=(0.9, 0.9), translate_percent=(0.05, 0.05), shear=(5, 5), p=1),
        A.Affine(rotate=(33, 33), scale={"x": (1.2, 1.2), "y": (0.8, 0.8)}, p=1, border_mode=cv2.BORDER_REPLICATE),
        A.Affine(rotate=(15, 15), p=1, interpolation=cv2.INTER_NEAREST),
        A.Affine(rotate=(15, 15), translate_px={"x": (-2, -2), "y": (3, 3)}, p=1, fill=100),
    ],
    "RandomBrightnessContrast": [
        A.RandomBrightnessContrast(brightness_limit=(0.1, 0.1), contrast_limit=(-0.13, -0.13), p=1),
        A.RandomBrightnessContrast(brightness_limit=(-0.2, -0.2), contrast_limit=(0.3, 0.3), brightness_by_max=False,
                                   p=1),
    ],
}


def _images() -> list[np.ndarray]:
    """Real handwriting (grey, 32 px) and noise (RGB, not square): smooth strokes and hard edges."""
    from sklearn.datasets import load_digits

    digits = load_digits().images[:6]
    grey = np.stack([cv2.resize((d * 16).clip(0, 255).astype(np.uint8), (32, 32)) for d in digits])[..., None]
    rgb = np.random.default_rng(0).integers(0, 256, (4, 24, 20, 3), dtype=np.uint8)
    return [grey, rgb]


def _both(pipeline: object, images: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    expected = np.stack([pipeline(image=im)["image"].reshape(im.shape) for im in images]).astype(np.float64)
    augment, why = batched_equivalent(pipeline)
    assert augment is not None, why
    batch = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float()
    got = augment(batch, np.random.default_rng(0)).permute(0, 2, 3, 1).cpu().numpy()
    return got, expected


def test_every_translation_has_fixed_examples() -> None:
    assert set(FIXED) == set(TRANSLATIONS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(TRANSLATIONS))
def test_same_pixels_as_albumentations_for_fixed_parameters(name: str, device: str) -> None:
    for transform in FIXED[name]:
        for images in _images():
            got, expected = _both(A.Compose([transform]), images, device)
            assert got.shape == expected.shape
            changed = np.abs(expected - images).mean()
            assert changed > 1.0, f"{transform}: the example changes nothing, so it proves nothing"
            difference = np.abs(got - expected)
            # float rounding on another device may move a value that sits on .5 by one level
            assert difference.max() <= 1.0 and difference.mean() < 0.01, (transform, difference.max(), difference.mean())


def test_the_affine_matrix_is_albumentations_own() -> None:
    from albumentations.augmentations.geometric.functional import create_affine_transformation_matrix

    rng = np.random.default_rng(1)
    for _ in range(20):
        t, sh, sc = rng.uniform(-5, 5, 2), rng.uniform(-20, 20, 2), rng.uniform(0.5, 1.5, 2)
        rot, shift = rng.uniform(-180, 180), (rng.uniform(0, 30), rng.uniform(0, 30))
        expected = create_affine_transformation_matrix({"x": t[0], "y": t[1]}, {"x": sh[0], "y": sh[1]},
                                                       {"x": sc[0], "y": sc[1]}, rot, shift)
        got = affine_matrices(t[None], sh[None], sc[None], np.array([rot]), shift)[0]
        np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_random_parameters_follow_the_same_distribution(device: str) -> None:
    """The light preset (random angles, zooms, shifts, brightness; p=0.5 each) on 1,000 copies of one
    image: per-pixel mean and spread, and the share of images left untouched, match albumentations'."""
    from datakit.online_augment import build_transform

    pipeline = build_transform("light", seed=0)
    image = _images()[0][3]
    copies = np.repeat(image[None], 1000, axis=0)
    got, expected = _both(pipeline, copies, device)
    assert np.abs(got.mean(0) - expected.mean(0)).mean() < 2.0
    assert np.abs(got.std(0) - expected.std(0)).mean() < 1.5
    untouched = [float((np.abs(x - image).max(axis=(1, 2, 3)) == 0).mean()) for x in (got, expected)]
    # flip 0.5, affine 0.5, brightness 0.5 (and a flip of a symmetric image is not seen): about 1/8
    assert abs(untouched[0] - untouched[1]) < 0.05, untouched


def test_a_pipeline_without_an_equivalent_says_which_transform() -> None:
    augment, why = batched_equivalent(A.Compose([A.HorizontalFlip(), A.GaussNoise()]))
    assert augment is None and "GaussNoise" in why
    augment, why = batched_equivalent(A.Compose([A.Affine(fit_output=True)]))
    assert augment is None and "fit_output" in why


@pytest.mark.parametrize("device", DEVICES)
def test_the_generator_decides_the_batch(device: str) -> None:
    augment, _ = batched_equivalent(A.Compose([A.Affine(rotate=(-30, 30), p=0.7), A.HorizontalFlip()]))
    batch = torch.as_tensor(np.repeat(_images()[0][:1], 16, axis=0), device=device).permute(0, 3, 1, 2).float()
    first = augment(batch, np.random.default_rng(5))
    again = augment(batch, np.random.default_rng(5))
    other = augment(batch, np.random.default_rng(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert len({tuple(x.flatten().tolist()) for x in first}) > 4  # each image draws its own parameters
