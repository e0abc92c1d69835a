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
    "RandomGamma": [A.RandomGamma(gamma_limit=(80, 80), p=1), A.RandomGamma(gamma_limit=(117, 117), p=1)],
    "CropAndPad": [
        A.CropAndPad(percent=(-0.08, -0.08), keep_size=True, p=1),
        A.CropAndPad(percent=(-0.2, -0.2), keep_size=True, sample_independently=False, p=1),
        A.CropAndPad(percent=(-0.9, -0.9), keep_size=True, p=1),  # crops that leave nothing: pixels given back
    ],
}
# OpenCV's resize rounds its bilinear weights to 1/2048 in fixed point (and its SIMD paths round again):
# about one pixel in ten lands one level away from the float computation; every other step is exact
MEAN_DIFFERENCE = {"CropAndPad": 0.2}


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
            assert difference.max() <= 1.0, (transform, difference.max())
            assert difference.mean() < MEAN_DIFFERENCE.get(name, 0.01), (transform, difference.mean())


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


@pytest.mark.parametrize("preset", ["light", "medium"])
@pytest.mark.parametrize("device", DEVICES)
def test_random_parameters_follow_the_same_distribution(device: str, preset: str) -> None:
    """A preset (random flips, angles, zooms, shifts, crops, brightness, gamma) on 2,000 copies of one
    image: the per-pixel mean and spread of ours differ from albumentations' no more than albumentations'
    differ from themselves under another seed (the sampling noise), and the share of images left
    untouched matches. (With 8,000 copies, ours and albumentations' other seed sit at the same distance,
    0.3 levels; a 25 degree rotation where medium has 15 lands at 3-4 levels.)"""
    from datakit.online_augment import build_transform

    image = _images()[0][3]
    copies = np.repeat(image[None], 2000, axis=0)
    got, expected = _both(build_transform(preset, seed=0), copies, device)
    other_seed = np.stack([build_transform(preset, seed=1)(image=im)["image"].reshape(im.shape) for im in copies])

    def distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        return float(np.abs(a.mean(0) - b.mean(0)).mean()), float(np.abs(a.std(0) - b.std(0)).mean())

    ours, noise = distance(got, expected), distance(other_seed.astype(np.float64), expected)
    assert ours[0] <= 2 * noise[0] + 0.25 and ours[1] <= 2 * noise[1] + 0.25, (ours, noise)
    untouched = [float((np.abs(x - image).max(axis=(1, 2, 3)) == 0).mean()) for x in (got, expected)]
    assert abs(untouched[0] - untouched[1]) < 0.04, untouched


def test_a_pipeline_without_an_equivalent_says_which_transform() -> None:
    augment, why = batched_equivalent(A.Compose([A.HorizontalFlip(), A.GaussNoise()]))
    assert augment is None and "GaussNoise" in why
    augment, why = batched_equivalent(A.Compose([A.Affine(fit_output=True)]))
    assert augment is None and "fit_output" in why
    augment, why = batched_equivalent(A.Compose([A.CropAndPad(percent=(-0.1, 0.1))]))
    assert augment is None and "padding" in why


@pytest.mark.parametrize("device", DEVICES)
def test_the_generator_decides_the_batch(device: str) -> None:
    augment, _ = batched_equivalent(A.Compose([A.Affine(rotate=(-30, 30), p=0.7), A.HorizontalFlip()]))
    batch = torch.as_tensor(np.repeat(_images()[0][:1], 16, axis=0), device=device).permute(0, 3, 1, 2).float()
    first = augment(batch, np.random.default_rng(5))
    again = augment(batch, np.random.default_rng(5))
    other = augment(batch, np.random.default_rng(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert len({tuple(x.flatten().tolist()) for x in first}) > 4  # each image draws its own parameters
