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


def with_splits(manifest: Path, out: Path, assign: dict[str, str] | None = None, fractions=(0.7, 0.15, 0.15),
                seed: int = 0) -> Path:
    """A copy of ``manifest`` with a split column: explicit per image path, or random by fractions."""
    m = load_manifest(manifest)
    images = m.images.copy()
    if assign is not None:
        images["split"] = images["path"].map(assign).astype("string")
    else:
        rng = np.random.default_rng(seed)
        images["split"] = pd.Series(rng.choice(["train", "val", "test"], size=len(images), p=list(fractions)),
                                    dtype="string")
    m.images = images
    m.image_root = str(m.root())
    save_manifest(m, out)
    return out


def write_rgb(path: Path, pixels: np.ndarray, quality: int | None = None) -> Path:
    """Write an RGB array (H, W, 3) as PNG, or JPEG with ``quality``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality is not None else []
    assert cv2.imwrite(str(path), bgr, params)
    return path
