"""Small real data sets for the augmentation tests, made with `datakit sample` and `datakit ingest`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import datakit
from datakit.manifest import load_manifest, save_manifest


def shapes_manifest(tmp: Path, count: int = 24, noise: float = 8.0, seed: int = 0, image_format: str = "png",
                    objects: tuple[int, int] = (1, 3), size: int = 64) -> Path:
    """Detection + instance segmentation manifest of `shapes` (COCO with RLE masks)."""
    datakit.sample("shapes", tmp / "shapes", count=count, noise=noise, seed=seed, image_format=image_format,
                   objects=objects, size=size, show_progress=False)
    datakit.ingest(tmp / "shapes", tmp / "m", show_progress=False)
    return tmp / "m"


def classes_manifest(tmp: Path, count: int = 40, imbalance: float = 0.4) -> Path:
    """Classification manifest: the shapes images filed in class folders, imbalanced."""
    datakit.sample("shapes", tmp / "shapes", count=count, imbalance=imbalance, show_progress=False)
    datakit.ingest(tmp / "shapes" / "images", tmp / "m", show_progress=False)
    return tmp / "m"


def with_splits(manifest: Path) -> Path:
    """Every 4th image (by id) in val, every 5th of the rest in test, the others in train."""
    m = load_manifest(manifest)
    order = np.argsort(m.images["id"].to_numpy())
    splits = np.array(["train"] * len(order), dtype=object)
    for rank, row in enumerate(order):
        splits[row] = "val" if rank % 4 == 1 else ("test" if rank % 5 == 2 else "train")
    m.images["split"] = splits
    save_manifest(m, manifest)
    return manifest
