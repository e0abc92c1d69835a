"""The batched (device-side) augmentation against albumentations itself: same pixels for the same
parameters, same distributions for random ones. Runs on the CPU, and on CUDA when there is one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datakit.augmentation.batched import TRANSLATIONS, affine_matrices, batched_equivalent
from datakit.augmentation.presets import heavy

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
        A.CropAndPad(percent=(0.1, 0.1), keep_size=True, p=1),  # padding only
        A.CropAndPad(percent=(0.15, 0.15), keep_size=True, fill=90, p=1),
    ],
    "ColorJitter": [  # one adjustment each: with several, each image draws their order
        A.ColorJitter(brightness=(1.3, 1.3), contrast=(1, 1), saturation=(1, 1), hue=(0, 0), p=1),
        A.ColorJitter(brightness=(1, 1), contrast=(0.7, 0.7), saturation=(1, 1), hue=(0, 0), p=1),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1.4, 1.4), hue=(0, 0), p=1),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=(0.04, 0.04), p=1),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=(-0.3, -0.3), p=1),
    ],
    "GaussianBlur": [A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.2, 1.2), p=1),
                     A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.6, 0.6), p=1),
                     A.GaussianBlur(blur_limit=0, sigma_limit=(0.9, 0.9), p=1)],
    "MotionBlur": [A.MotionBlur(blur_limit=(5, 5), angle_range=(30, 30), direction_range=(0.5, 0.5),
                                allow_shifted=False, p=1),
                   A.MotionBlur(blur_limit=(7, 7), angle_range=(100, 100), direction_range=(-1, -1),
                                allow_shifted=False, p=1)],
    # no spread: the noise is its mean, so what is checked is albucore's add, clip and truncation
    "GaussNoise": [A.GaussNoise(std_range=(0, 0), mean_range=(0.1, 0.1), p=1),
                   A.GaussNoise(std_range=(0, 0), mean_range=(-0.07, -0.07), per_channel=False, p=1)],
    "OneOf": [A.OneOf([A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(1, 1))], p=1)],
}
# OpenCV's resize rounds its bilinear weights to 1/2048 in fixed point (and its SIMD paths round again):
# about one pixel in ten lands one level away from the float computation; every other step is exact
MEAN_DIFFERENCE = {"CropAndPad": 0.2}
MAX_DIFFERENCE: dict[str, float] = {}
if int(cv2.__version__.split(".")[0]) < 5:
    # OpenCV 4's warpAffine rounds each source coordinate to 1/32 pixel (fixed point) before interpolating;
    # 5 interpolates in float. On 4.11-4.14 the examples here differ by up to 5 levels at hard edges
    # (random-noise images), 0.1-0.8 on average: the same warp, quantized differently
    MAX_DIFFERENCE["Affine"], MEAN_DIFFERENCE["Affine"] = 5.0, 1.0


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
            grey_unchanged = name == "ColorJitter" and images.shape[-1] == 1 and (
                transform.saturation != (1, 1) or transform.hue != (0, 0))
            if grey_unchanged:  # albumentations leaves grey images as they are: so must we
                assert changed == 0
            else:
                assert changed > 1.0, f"{transform}: the example changes nothing, so it proves nothing"
            difference = np.abs(got - expected)
            # float rounding on another device may move a value that sits on .5 by one level
            assert difference.max() <= MAX_DIFFERENCE.get(name, 1.0), (transform, difference.max())
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


def _photo() -> np.ndarray:
    """A colour photograph (scikit-learn's flower), 32 x 40: what colour jitter and hue act on."""
    from sklearn.datasets import load_sample_image

    return cv2.resize(load_sample_image("flower.jpg"), (40, 32), interpolation=cv2.INTER_AREA)


def summaries(images: np.ndarray) -> np.ndarray:
    """Per image (N x H x W x C), what each step moves: channel means, contrast, sharpness (blur lowers it,
    noise raises it), the centre of brightness (geometry), the share of black fill, and for colour the
    saturation and two hue differences. N x k."""
    x = images.astype(np.float64)
    _, height, width, channels = x.shape
    grey = x.mean(-1)
    total = grey.sum((1, 2)) + 1e-9
    ys, xs = np.mgrid[0:height, 0:width]
    columns = [x[..., i].mean((1, 2)) for i in range(channels)]
    columns += [grey.std((1, 2)), np.abs(np.diff(grey, axis=2)).mean((1, 2)),
                np.abs(np.diff(grey, axis=1)).mean((1, 2)),
                (grey * xs).sum((1, 2)) / total, (grey * ys).sum((1, 2)) / total, (x.max(-1) == 0).mean((1, 2))]
    if channels == 3:
        columns += [(x.max(-1) - x.min(-1)).mean((1, 2)), (x[..., 0] - x[..., 1]).mean((1, 2)),
                    (x[..., 1] - x[..., 2]).mean((1, 2))]
    return np.stack(columns, axis=1)


def same_distribution(got: np.ndarray, expected: np.ndarray) -> float:
    """The smallest two-sample Kolmogorov-Smirnov p-value over the summaries, times their number (Bonferroni):
    below 0.001, ours and albumentations' images are not draws from one distribution."""
    from scipy.stats import ks_2samp

    ours, theirs = summaries(got), summaries(expected)
    return min(ks_2samp(ours[:, i], theirs[:, i]).pvalue for i in range(ours.shape[1])) * ours.shape[1]


def _copies(colour: bool, n: int = 2000) -> np.ndarray:
    return np.repeat((_photo() if colour else _images()[0][3])[None], n, axis=0)


# Calibration (2,000 copies, scaled p-values): every correct step and preset scored 0.8 or more. Scoring a
# changed step against albumentations: padding up to 8% instead of 5% 1e-30, noise 1.3x stronger 0.005,
# hue range 1.5x 0.0002, p 0.85x on Affine 1e-12, on brightness/contrast 3e-8, on light/medium/heavy
# 0.004/0.0001/0.0009; subtler changes (saturation 0.6-1.4 for 0.7-1.3, rotation 1.2x) stayed near 0.1.
SIGNIFICANCE = 0.001


@pytest.mark.parametrize(("preset", "colour"), [("light", False), ("medium", False), ("heavy", False),
                                                ("heavy", True)])
@pytest.mark.parametrize("device", DEVICES)
def test_presets_draw_from_the_same_distribution(device: str, preset: str, colour: bool) -> None:
    """A whole preset on 2,000 copies of one image (a digit, or a colour photograph), ours against
    albumentations: each image is one independent draw, so per-image summaries must not tell them apart;
    and the share of images left untouched matches."""
    from datakit.online_augment import build_transform

    copies = _copies(colour)
    got, expected = _both(build_transform(preset, seed=0), copies, device)
    assert same_distribution(got, expected) > SIGNIFICANCE
    untouched = [float((np.abs(x - copies[0]).max(axis=(1, 2, 3)) == 0).mean()) for x in (got, expected)]
    assert abs(untouched[0] - untouched[1]) < 0.04, untouched


HEAVY_STEPS = {type(t).__name__: t for t in heavy.build("classification", "any")}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(HEAVY_STEPS))
def test_each_random_step_draws_from_the_same_distribution(name: str, device: str) -> None:
    """Every step of the heavy preset alone, with its random ranges, on a colour photograph: a step's own
    effect is not hidden among the others' (a preset test misses a hue range 1.5x too wide; this one fails)."""
    got, expected = _both(A.Compose([HEAVY_STEPS[name]], seed=0), _copies(colour=True), device)
    assert same_distribution(got, expected) > SIGNIFICANCE


def test_a_pipeline_without_an_equivalent_says_which_transform() -> None:
    augment, why = batched_equivalent(A.Compose([A.HorizontalFlip(), A.ElasticTransform()]))
    assert augment is None and "ElasticTransform" in why
    augment, why = batched_equivalent(A.Compose([A.Affine(fit_output=True)]))
    assert augment is None and "fit_output" in why
    augment, why = batched_equivalent(A.Compose([A.CropAndPad(percent=(-0.1, 0.1), border_mode=cv2.BORDER_REFLECT)]))
    assert augment is None and "padding with border_mode" in why
    augment, why = batched_equivalent(A.Compose([A.GaussNoise(noise_scale_factor=0.5)]))
    assert augment is None and "noise_scale_factor" in why
    augment, why = batched_equivalent(A.Compose([A.OneOf([A.GaussianBlur(), A.MedianBlur()])]))
    assert augment is None and "OneOf holding MedianBlur" in why


@pytest.mark.parametrize("device", DEVICES)
def test_the_generator_decides_the_batch(device: str) -> None:
    augment, _ = batched_equivalent(A.Compose([A.Affine(rotate=(-30, 30), p=0.7), A.HorizontalFlip()]))
    batch = torch.as_tensor(np.repeat(_images()[0][:1], 16, axis=0), device=device).permute(0, 3, 1, 2).float()
    first = augment(batch, np.random.default_rng(5))
    again = augment(batch, np.random.default_rng(5))
    other = augment(batch, np.random.default_rng(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert len({tuple(x.flatten().tolist()) for x in first}) > 4  # each image draws its own parameters


@pytest.mark.parametrize("device", DEVICES)
def test_colour_jitter_follows_each_images_own_order(device: str) -> None:
    """Saturation then hue, or hue then saturation (each image draws its order): one pass over the
    schedule gives each image albumentations' result for its own order."""
    import itertools

    from albumentations.augmentations.pixel import functional as fpixel

    from datakit.augmentation.batched.colour import HUE, MAX_SCHEDULE, ColorJitter, hue_tables

    jitter = ColorJitter(((1, 1), (1, 1), (0.6, 1.4), (-0.1, 0.1)), p=1.0)
    assert jitter.schedule == [2, HUE, 2]  # the hue conversion once
    images = _images()[1]
    saturation, hue = 1.3, -0.07
    for first, second in itertools.permutations((2, HUE)):
        adjust = {2: lambda im: fpixel.adjust_saturation_torchvision(im, saturation),
                  HUE: lambda im: fpixel.adjust_hue_torchvision(im, hue)}
        expected = np.stack([adjust[second](adjust[first](im.copy())) for im in images]).astype(np.float64)
        acts = np.zeros(MAX_SCHEDULE)
        acts[[0, 1] if first == 2 else [1, 2]] = 1
        factors = np.array([1, 1, saturation, hue])
        row = np.concatenate([factors, 1 - factors, acts, hue_tables(np.array([hue]))[0]])
        params = torch.as_tensor(np.tile(row, (len(images), 1)), dtype=torch.float32, device=device)
        batch = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float()
        got = jitter.apply(batch, params, torch.Generator(device=device)).permute(0, 2, 3, 1).cpu().numpy()
        assert np.abs(expected - images).mean() > 1.0
        difference = np.abs(got - expected)
        assert difference.max() <= 1.0 and difference.mean() < 0.01, (first, difference.max(), difference.mean())


def test_the_sampling_grid_is_affine_grids_without_a_matrix_product() -> None:
    """Computed elementwise, so a TF32 matmul setting on a GPU cannot coarsen it; the same numbers as affine_grid."""
    import torch.nn.functional as F

    from datakit.augmentation.batched.geometry import sampling_grid

    theta = torch.as_tensor(np.random.default_rng(2).uniform(-1.5, 1.5, (5, 6)), dtype=torch.float32)
    expected = F.affine_grid(theta.view(-1, 2, 3), [5, 3, 13, 17], align_corners=False)
    torch.testing.assert_close(sampling_grid(theta, 13, 17), expected, atol=1e-6, rtol=0)


def test_the_batched_augment_benchmark_runs(tmp_path) -> None:
    """benchmarks/batched_augment.py as a smoke run: every preset and image kind gets a line."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "batched_augment.py"), "--batch", "4",
                           "--rounds", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["light"], ["medium"], ["heavy"])]
    assert [(r[0], r[1], r[3]) for r in rows] == [(p, s, k) for p in ("light", "medium", "heavy")
                                                  for s, k in (("16", "grey"), ("64", "RGB"))]
