"""Generated data sets with known answers for the balance-report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datakit.ingest import ingest
from datakit.manifest import load_manifest, save_manifest
from datakit.samples import sample


def shapes_manifest(root: Path, count: int = 200, imbalance: float = 1.0, seed: int = 0) -> tuple[Path, dict[str, int]]:
    """An ingested `shapes` set: (manifest directory, images per class as the sampler wrote them)."""
    result = sample("shapes", root / "data", count=count, imbalance=imbalance, seed=seed, show_progress=False)
    ingest(result.image_folder, root / "manifest", workers=1, show_progress=False)
    return root / "manifest", dict(result.classes)


def objects_manifest(root: Path, count: int = 40, seed: int = 2, copies: int = 0) -> Path:
    """An ingested `shapes` set with its COCO boxes and masks and no image labels or splits; the
    first ``copies`` images also appear a second time (as ``*_copy.png``, exact duplicates)."""
    sample("shapes", root / "data", count=count, seed=seed, show_progress=False)
    if copies:
        _copy_coco_images(root / "data", copies)
    ingest(root / "data", root / "manifest", format="coco", workers=1, show_progress=False)
    return root / "manifest"


def _copy_coco_images(data: Path, copies: int) -> None:
    import json
    import shutil

    annotations = data / "annotations" / "instances.json"
    coco = json.loads(annotations.read_text())
    next_id = max(im["id"] for im in coco["images"]) + 1
    for offset, image in enumerate(coco["images"][:copies]):
        name = image["file_name"].replace(".png", "_copy.png")
        shutil.copyfile(data / "images" / image["file_name"], data / "images" / name)
        coco["images"].append({**image, "id": next_id + offset, "file_name": name})
    annotations.write_text(json.dumps(coco))


def copy_beside(m, manifest: Path, name: str) -> Path:
    """Save ``m`` as a sibling of ``manifest`` (its image root stays relative and inside the data set)."""
    import os

    out = manifest.parent / name
    m.image_root = os.path.relpath(m.root(), out)
    save_manifest(m, out)
    return out


def with_splits(manifest: Path, name: str, assign: dict[str, str] | None = None, fractions=(0.7, 0.15, 0.15),
                seed: int = 0) -> Path:
    """A copy of ``manifest`` (a sibling called ``name``) with a split column: per image path, or random."""
    m = load_manifest(manifest)
    images = m.images.copy()
    if assign is not None:
        images["split"] = images["path"].map(assign).astype("string")
    else:
        rng = np.random.default_rng(seed)
        images["split"] = pd.Series(rng.choice(["train", "val", "test"], size=len(images), p=list(fractions)),
                                    dtype="string")
    m.images = images
    return copy_beside(m, manifest, name)


def write_rgb(path: Path, pixels: np.ndarray, quality: int | None = None) -> Path:
    """Write an RGB array (H, W, 3) as PNG, or JPEG with ``quality``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality is not None else []
    assert cv2.imwrite(str(path), bgr, params)
    return path


def smooth_picture(rng: np.random.Generator, side: int = 96) -> np.ndarray:
    """A distinct colour picture: random blobs at several scales plus fine grain (no two alike, not blurry)."""
    import cv2

    image = np.zeros((side, side, 3), np.float32)
    for cells, weight in ((3, 1.0), (6, 0.6), (12, 0.35), (24, 0.2)):
        coarse = rng.normal(size=(cells, cells, 3)).astype(np.float32)
        image += weight * cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    image = (image - image.mean()) / (image.std() + 1e-6) * 45 + 128
    image += rng.normal(0, 10, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def full_manifest(root: Path) -> Path:
    """Labels, train/val splits, boxes and masks, an exact duplicate that leaks into val, a broken file.

    Every report section has something to say about it.
    """
    import shutil

    sample("shapes", root / "data", count=80, seed=5, imbalance=0.4, show_progress=False)
    images = root / "data" / "images"
    first = sorted(images.rglob("*.png"))[0]
    shutil.copyfile(first, first.parent / "copy_of_first.png")
    (images / "broken.png").write_bytes(first.read_bytes()[:200])
    ingest(images, root / "m", workers=1, show_progress=False)
    ingest(root / "data", root / "coco", format="coco", workers=1, show_progress=False)
    m, coco = load_manifest(root / "m"), load_manifest(root / "coco")
    m.images["split"] = pd.Series(["val" if p.endswith("copy_of_first.png") or i % 5 == 0 else "train"
                                   for i, p in enumerate(m.images["path"])], dtype="string")
    # the COCO ingest has its own image ids: map them to ours by file name
    ours = dict(zip(m.images["path"].map(lambda p: Path(p).name), m.images["id"]))
    theirs = dict(zip(coco.images["id"], coco.images["path"].map(lambda p: Path(p).name)))
    ann = coco.annotations.copy()
    ann["image_id"] = ann["image_id"].map(lambda i: ours.get(theirs.get(i))).astype("string")
    m.annotations = ann[ann["image_id"].notna()].reset_index(drop=True)
    m.tasks = ["classification", "detection"]
    return copy_beside(m, root / "m", "full")
