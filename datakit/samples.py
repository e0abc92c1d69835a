"""`datakit sample`: built-in data sets made locally, deterministic by seed, no network.

- ``shapes``: coloured circles, squares, triangles and stars on varied, noisy backgrounds. Every
  image is filed under the class of its largest shape (``images/<class>/``), and every shape has a
  box and an instance mask (``annotations/instances.json``, COCO with RLE), with semantic and
  instance mask PNGs under ``masks/``.
- ``digits``: scikit-learn's real 8x8 handwritten digits (shipped inside scikit-learn), written
  as PNG class folders.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from datakit.atomic import write_json
from datakit.errors import DatakitError

SHAPE_CLASSES = ("circle", "square", "triangle", "star")


@dataclass
class SampleResult:
    name: str
    output: Path
    images: int
    classes: dict[str, int]
    image_folder: Path
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = str(self.output)
        data["image_folder"] = str(self.image_folder)
        return data


# ---------------------------------------------------------------------------------------------
# shapes


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray | None:
    if kind == "circle":
        return None
    if kind == "square":
        n, radii = 4, [r]
        angle += math.pi / 4
    elif kind == "triangle":
        n, radii = 3, [r]
    elif kind == "star":
        n, radii = 10, [r, r * 0.45]
    else:
        raise AssertionError(kind)
    points = []
    for i in range(n):
        a = angle + 2 * math.pi * i / n
        rr = radii[i % len(radii)]
        points.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return np.round(np.array(points)).astype(np.int32)


def _draw(canvas: np.ndarray, kind: str, cx: float, cy: float, r: float, angle: float, colour: tuple) -> None:
    polygon = _shape_polygon(kind, cx, cy, r, angle)
    if polygon is None:
        cv2.circle(canvas, (int(round(cx)), int(round(cy))), int(round(r)), colour, -1, lineType=cv2.LINE_8)
    else:
        cv2.fillPoly(canvas, [polygon], colour, lineType=cv2.LINE_8)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    gradient = a * (1 - t) + b * t
    if rng.random() < 0.5:
        gradient = gradient.transpose(1, 0, 2)
    return np.broadcast_to(gradient, (size, size, 3)).astype(np.float32)


def _distinct_colour(rng: np.random.Generator, background: np.ndarray, cx: int, cy: int) -> tuple[int, int, int]:
    base = background[min(cy, background.shape[0] - 1), min(cx, background.shape[1] - 1)]
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - base).sum() > 200:
            break
    return tuple(int(c) for c in colour)


def _class_counts(count: int, classes: tuple[str, ...], imbalance: float) -> dict[str, int]:
    """Per-class image counts; with imbalance < 1 the last class gets that fraction of the first."""
    if not 0 < imbalance <= 1:
        raise DatakitError(f"--imbalance must be in (0, 1], got {imbalance}")
    weights = np.array([imbalance ** (i / max(1, len(classes) - 1)) for i in range(len(classes))])
    raw = count * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: count - counts.sum()]] += 1
    return {c: max(1, int(n)) for c, n in zip(classes, counts)}


def make_shapes(
    output: Path,
    count: int = 400,
    size: int = 64,
    objects: tuple[int, int] = (1, 3),
    imbalance: float = 1.0,
    noise: float = 8.0,
    seed: int = 0,
    image_format: str = "png",
    classes: tuple[str, ...] = SHAPE_CLASSES,
    on_image: Callable[[], None] | None = None,
) -> SampleResult:
    from pycocotools import mask as mask_utils

    if size < 24:
        raise DatakitError(f"--size must be at least 24 pixels, got {size}")
    low, high = objects
    if low < 1 or high < low:
        raise DatakitError(f"--objects must be MIN,MAX with 1 <= MIN <= MAX, got {low},{high}")
    if image_format not in ("png", "jpg"):
        raise DatakitError(f"--image-format must be png or jpg, got {image_format!r}")
    rng = np.random.default_rng(seed)
    per_class = _class_counts(count, classes, imbalance)
    image_dir = output / "images"
    for sub in ("images", "annotations", "masks/semantic", "masks/instance"):
        (output / sub).mkdir(parents=True, exist_ok=True)
    category_ids = {name: i + 1 for i, name in enumerate(classes)}
    coco: dict[str, Any] = {
        "info": {"description": "datakit shapes sample", "seed": seed},
        "images": [],
        "annotations": [],
        "categories": [{"id": category_ids[n], "name": n, "supercategory": "shape"} for n in classes],
    }
    order = [c for c in classes for _ in range(per_class[c])]
    rng.shuffle(order)
    ann_id = 1
    for index, main_class in enumerate(order, start=1):
        stem = f"shapes_{index:05d}"
        background = _background(rng, size)
        canvas = background.copy()
        instance_map = np.zeros((size, size), dtype=np.uint16)
        n_objects = int(rng.integers(low, high + 1))
        # small distractors first, then the main shape on top, larger than any distractor
        shapes = []
        for _ in range(n_objects - 1):
            shapes.append((str(rng.choice(classes)), rng.uniform(0.07, 0.13) * size))
        shapes.append((main_class, rng.uniform(0.2, 0.32) * size))
        # draw order decides occlusion: a later shape's pixels belong to it alone
        drawn = []
        for instance, (kind, radius) in enumerate(shapes, start=1):
            cx = rng.uniform(radius, size - radius)
            cy = rng.uniform(radius, size - radius)
            angle = rng.uniform(0, 2 * math.pi)
            colour = _distinct_colour(rng, background, int(cx), int(cy))
            _draw(canvas, kind, cx, cy, radius, angle, colour)
            layer = np.zeros((size, size), dtype=np.uint8)
            _draw(layer, kind, cx, cy, radius, angle, 1)
            instance_map[layer > 0] = instance
            drawn.append(kind)
        if noise > 0:
            canvas = canvas + rng.normal(0.0, noise, canvas.shape)
        image = np.clip(canvas, 0, 255).astype(np.uint8)
        class_dir = image_dir / main_class
        class_dir.mkdir(exist_ok=True)
        file_name = f"{main_class}/{stem}.{image_format}"
        cv2.imwrite(str(image_dir / file_name), image[:, :, ::-1].copy())
        semantic = np.zeros((size, size), dtype=np.uint8)
        coco["images"].append({"id": index, "file_name": file_name, "width": size, "height": size})
        for instance, kind in enumerate(drawn, start=1):
            mask = instance_map == instance
            if not mask.any():
                continue  # fully hidden under later shapes
            semantic[mask] = category_ids[kind]
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            rle["counts"] = rle["counts"].decode("ascii")
            coco["annotations"].append({
                "id": ann_id,
                "image_id": index,
                "category_id": category_ids[kind],
                "bbox": bbox,
                "area": float(mask.sum()),
                "iscrowd": 0,
                "segmentation": rle,
            })
            ann_id += 1
        cv2.imwrite(str(output / "masks" / "semantic" / f"{stem}.png"), semantic)
        cv2.imwrite(str(output / "masks" / "instance" / f"{stem}.png"), instance_map.astype(np.uint16))
        if on_image is not None:
            on_image()
    _write_json(output / "annotations" / "instances.json", coco)
    # the class values of masks/semantic by name: `datakit ingest --format masks` reads it
    (output / "classes.txt").write_text("".join(f"{i} {n}\n" for n, i in category_ids.items()))
    config = {"count": count, "size": size, "objects": list(objects), "imbalance": imbalance,
              "noise": noise, "seed": seed, "image_format": image_format, "classes": list(classes)}
    return SampleResult("shapes", output, len(order), per_class, image_dir, config)


# ---------------------------------------------------------------------------------------------
# digits


def make_digits(output: Path, size: int = 8, seed: int = 0, on_image: Callable[[], None] | None = None,
                count: int | None = None) -> SampleResult:
    """scikit-learn's 1,797 real 8x8 digits (all of them, or ``count`` drawn per class in proportion, by ``seed``)."""
    from sklearn.datasets import load_digits

    if size < 8:
        raise DatakitError(f"--size must be at least 8 for digits, got {size}")
    digits = load_digits()
    chosen = _stratified_subset(digits.target, count, seed) if count is not None else range(len(digits.target))
    image_dir = output / "images"
    counts: dict[str, int] = {}
    for index in chosen:
        pixels, target = digits.images[index], digits.target[index]
        image = np.round(pixels * (255.0 / 16.0)).astype(np.uint8)
        if size != 8:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        label = str(int(target))
        class_dir = image_dir / label
        class_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(class_dir / f"digit_{index:04d}.png"), image)  # the source index: subsets share names
        counts[label] = counts.get(label, 0) + 1
        if on_image is not None:
            on_image()
    config = {"size": size, "seed": seed, "source": "sklearn.datasets.load_digits",
              **({"count": len(chosen)} if count is not None else {})}
    return SampleResult("digits", output, len(chosen), dict(sorted(counts.items())), image_dir, config)


def _stratified_subset(targets: np.ndarray, count: int, seed: int) -> list[int]:
    """``count`` indices, each class's share as in ``targets`` (largest remainders), drawn by ``seed``; sorted."""
    classes, sizes = np.unique(targets, return_counts=True)
    raw = count * sizes / sizes.sum()
    take = np.floor(raw).astype(int)
    take[np.argsort(raw - take, kind="stable")[::-1][: count - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(targets == c), n, replace=False) for c, n in zip(classes, take)]
    return sorted(int(i) for i in np.concatenate(chosen))


# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    write_json(path, data, fsync=True, indent=None, default=None)


SAMPLES = {"shapes": make_shapes, "digits": make_digits}


# the largest side worth generating: a shapes image is drawn in float32 layers (100,000 px asked for 112 GiB)
MAX_SAMPLE_SIDE = {"shapes": 2048, "digits": 1024}
DIGITS_TOTAL, DIGIT_CLASSES = 1797, 10


def sample(
    name: str,
    output: str | os.PathLike[str],
    seed: int = 0,
    count: int | None = None,
    size: int | None = None,
    objects: tuple[int, int] = (1, 3),
    imbalance: float = 1.0,
    noise: float = 8.0,
    image_format: str = "png",
    show_progress: bool = True,
) -> SampleResult:
    """Write the built-in data set ``name`` under ``output``; the same seed gives the same files.

    ``count``: shapes' number of images (400 by default); digits' (all 1,797 by default, fewer
    drawn per class in proportion)."""
    from datakit.console import progress_bar

    if name not in SAMPLES:
        raise DatakitError(f"unknown sample {name!r}; choose one of: {', '.join(SAMPLES)}")
    _check_count_and_size(name, count, size)
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise DatakitError(f"{out}: folder exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    if name == "shapes":
        count = 400 if count is None else count
        with progress_bar("Drawing shapes", count, show_progress) as advance:
            result = make_shapes(out, count=count, size=size or 64, objects=objects, imbalance=imbalance,
                                 noise=noise, seed=seed, image_format=image_format, on_image=advance)
    else:
        with progress_bar("Writing digits", count or DIGITS_TOTAL, show_progress) as advance:
            result = make_digits(out, size=size or 8, seed=seed, on_image=advance, count=count)
    _write_json(out / "sample.json", {"name": name, **result.config})
    return result


def _check_count_and_size(name: str, count: int | None, size: int | None) -> None:
    """Before any folder is made: a count the sample can give, a side that fits in memory."""
    if count is not None:
        least = len(SHAPE_CLASSES) if name == "shapes" else DIGIT_CLASSES
        most = DIGITS_TOTAL if name == "digits" else None
        if count < least or (most is not None and count > most):
            bounds = f"between {least} and {most}" if most else f"at least {least}"
            raise DatakitError(f"--count for {name} must be {bounds} (one image per class at least), got {count}")
    if size is not None and size > MAX_SAMPLE_SIDE[name]:
        raise DatakitError(f"--size for {name} must be at most {MAX_SAMPLE_SIDE[name]} pixels, got {size}")
