"""Rebuild the small manifests in this folder (deterministic): `python sample_manifests/build.py`.

- shapes-mini/: 24 generated shapes images in class folders; `manifest/` labels each image by
  its largest shape (classification, CSV tables); `objects.manifest/` has every shape's box and
  RLE mask, read from the sample's COCO file (detection + instance segmentation, JSONL tables).
- shapes-one/: 24 generated shapes images with exactly one shape each; `manifest/` holds its box
  (localization: the class and box of the one object; JSONL tables, no masks).
- digits-mini/: 50 of scikit-learn's handwritten digits (5 per class), manifest tables as JSONL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from datakit.ingest import ingest
from datakit.samples import make_digits, make_shapes

HERE = Path(__file__).resolve().parent


def build_shapes() -> None:
    root = HERE / "shapes-mini"
    shutil.rmtree(root, ignore_errors=True)
    make_shapes(root, count=24, size=64, seed=7)
    shutil.rmtree(root / "masks")  # kept small: images + COCO annotations are enough here
    ingest(root / "images", root / "manifest", table_format="csv", show_progress=False)
    ingest(root, root / "objects.manifest", format="coco", table_format="jsonl", show_progress=False)


def build_shapes_one() -> None:
    root = HERE / "shapes-one"
    shutil.rmtree(root, ignore_errors=True)
    make_shapes(root, count=24, size=64, objects=(1, 1), seed=11)
    shutil.rmtree(root / "masks")
    ingest(root, root / "manifest", format="coco", table_format="jsonl", show_progress=False)
    # boxes are what localization learns: the RLE masks are left out to keep the sample small
    import pandas as pd

    from datakit.manifest import load_manifest, save_manifest

    m = load_manifest(root / "manifest")
    m.annotations["segmentation_kind"] = pd.NA
    m.annotations["segmentation"] = pd.NA
    m.tasks = ["detection"]  # the manifest names tasks by what it holds: boxes
    save_manifest(m, root / "manifest", table_format="jsonl")
    (root / "annotations" / "instances.json").unlink()
    (root / "annotations").rmdir()


def build_digits() -> None:
    root = HERE / "digits-mini"
    shutil.rmtree(root, ignore_errors=True)
    scratch = HERE / ".digits-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    make_digits(scratch)
    for label_dir in sorted((scratch / "images").iterdir()):
        target = root / "images" / label_dir.name
        target.mkdir(parents=True)
        for path in sorted(label_dir.iterdir())[:5]:
            shutil.copy2(path, target / path.name)
    shutil.rmtree(scratch)
    ingest(root / "images", root / "manifest", table_format="jsonl", show_progress=False)


if __name__ == "__main__":
    build_shapes()
    build_shapes_one()
    build_digits()
