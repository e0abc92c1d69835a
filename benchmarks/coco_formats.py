"""COCO ingest and export at scale, against pycocotools' own ``COCO()`` load of the same file.

    python benchmarks/coco_formats.py                          # 10,000 images, 100,000 objects
    python benchmarks/coco_formats.py --images 1000 --objects 10000 --keep /tmp/coco-bench

The generated file has 10,000 images of 640x480 and 100,000 objects: 50% polygons (8-24 points,
1-2 parts), 45% compressed RLE, 5% crowd regions as uncompressed RLE (as COCO stores crowds),
over 80 categories with sparse ids (1..90, as COCO's own).

The images are not written: this measures the annotation side (parsing, validation, the manifest
tables, writing COCO back), which is what this issue adds. Reading image files is the folder
ingest's job and has its own benchmark (benchmarks/ingest.py); here every image row gets status
``missing`` (one stat call each, which is included), and the export runs with ``--images none
--include-broken`` so it writes every annotation without copying files.

Each step runs in its own process, timed inside (the work itself) and from outside (wall time
with interpreter start-up); peak memory is the peak summed RSS of the process tree, sampled every
20 ms from /proc. The ratio is datakit's time over pycocotools' ``COCO()`` load time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

WIDTH, HEIGHT = 640, 480


def generate(path: Path, images: int, objects: int, seed: int) -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    category_ids = sorted(rng.choice(np.arange(1, 91), 80, replace=False).tolist())
    coco_images = [{"id": i + 1, "file_name": f"{i // 1000:03d}/img_{i:06d}.jpg", "width": WIDTH, "height": HEIGHT}
                   for i in range(images)]
    annotations = []
    kinds = rng.random(objects)
    owners = np.sort(rng.integers(1, images + 1, objects))
    for n in range(objects):
        parts = []
        for _ in range(1 if rng.random() < 0.9 else 2):
            points = int(rng.integers(8, 25))
            radius = rng.uniform(8, 60)
            cx, cy = rng.uniform(radius, WIDTH - radius), rng.uniform(radius, HEIGHT - radius)
            angles = np.sort(rng.uniform(0, 2 * math.pi, points))
            radii = radius * rng.uniform(0.6, 1.0, points)
            xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
            parts.append([round(float(v), 2) for v in xy.reshape(-1)])
        rle = mask_utils.merge(mask_utils.frPyObjects(parts, HEIGHT, WIDTH))
        box = [float(v) for v in mask_utils.toBbox(rle)]
        area = float(mask_utils.area(rle))
        crowd = 0
        if kinds[n] < 0.5:
            segmentation = parts
        elif kinds[n] < 0.95:
            segmentation = {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")}
        else:
            crowd = 1
            mask = mask_utils.decode(rle)
            flat = mask.reshape(-1, order="F")
            changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
            counts = np.diff(np.concatenate([[0], changes])).tolist()
            if sum(counts) != HEIGHT * WIDTH:
                counts.append(HEIGHT * WIDTH - sum(counts))
            segmentation = {"size": [HEIGHT, WIDTH], "counts": counts}
        annotations.append({"id": n + 1, "image_id": int(owners[n]), "category_id": int(rng.choice(category_ids)),
                            "bbox": box, "area": area, "iscrowd": crowd, "segmentation": segmentation})
    categories = [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in category_ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump({"images": coco_images, "annotations": annotations, "categories": categories}, fh)


# ---------------------------------------------------------------------------------------------
# one step per process


def stage(name: str, args: list[str]) -> dict:
    """One step, timed after its imports (pycocotools.coco imports matplotlib, datakit pandas)."""
    import contextlib
    import io

    import datakit  # noqa: F401
    from pycocotools.coco import COCO

    started = time.perf_counter()
    if name == "pycocotools":
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(args[0])
        result = {"images": len(coco.imgs), "annotations": len(coco.anns)}
    elif name == "ingest":
        from datakit import ingest

        r = ingest(args[0], args[1], format="coco", show_progress=False)
        result = {"images": r.total, "annotations": r.annotations, "skipped": len(r.report.skipped),
                  "changed": len(r.report.changed)}
    elif name == "export":
        from datakit import export

        r = export(args[0], "coco", args[1], images="none", include_broken=True)
        result = {"images": r.images, "annotations": r.annotations, "skipped": len(r.report.skipped)}
    elif name == "verify":
        with contextlib.redirect_stdout(io.StringIO()):
            original, exported = COCO(args[0]), COCO(args[1])
        a = sorted((x["bbox"], x["area"], x["iscrowd"]) for x in original.dataset["annotations"])
        b = sorted((x["bbox"], x["area"], x["iscrowd"]) for x in exported.dataset["annotations"])
        result = {"same_boxes_areas_crowd": a == b, "images": len(exported.imgs), "annotations": len(exported.anns)}
    else:
        raise SystemExit(f"unknown stage {name}")
    result["seconds"] = time.perf_counter() - started
    return result


def run_stage(name: str, *args: str) -> tuple[dict, float, int]:
    stdout, wall, peak = run_measured([sys.executable, __file__, "--stage", name, *args])
    return json.loads(stdout.strip().splitlines()[-1]), wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--objects", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work in (and keep) this folder")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.stage:
        print(json.dumps(stage(args.stage, rest)))
        return

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="datakit-coco-bench-"))
    source = workdir / "data" / "annotations" / "instances_train.json"
    try:
        if not source.exists():
            t0 = time.perf_counter()
            generate(source, args.images, args.objects, args.seed)
            print(f"generated {args.images} images, {args.objects} objects in {time.perf_counter() - t0:.1f}s "
                  f"({source.stat().st_size / 1e6:.0f} MB JSON)")
        for old in ("manifest", "export"):
            shutil.rmtree(workdir / old, ignore_errors=True)
        print(f"cores: {os.cpu_count()}")
        rows = []
        base, base_wall, base_peak = run_stage("pycocotools", str(source))
        rows.append(("pycocotools COCO() load", base, base_wall, base_peak))
        ingested, wall, peak = run_stage("ingest", str(workdir / "data"), str(workdir / "manifest"))
        rows.append(("datakit ingest --format coco", ingested, wall, peak))
        exported, wall, peak = run_stage("export", str(workdir / "manifest"), str(workdir / "export"))
        rows.append(("datakit export --format coco", exported, wall, peak))
        for label, result, wall, peak in rows:
            ratio = result["seconds"] / base["seconds"]
            print(f"{label:30s} {result['seconds']:6.2f}s work, {wall:6.2f}s wall, peak memory {peak / 2**20:5.0f} MiB, "
                  f"{ratio:4.2f}x pycocotools load  {json.dumps({k: v for k, v in result.items() if k != 'seconds'})}")
        exported_file = workdir / "export" / "annotations" / "instances_train.json"
        check, _, _ = run_stage("verify", str(source), str(exported_file))
        print(f"exported file loads with COCO(): {check['images']} images, {check['annotations']} annotations; "
              f"boxes, areas and iscrowd identical to the source: {check['same_boxes_areas_crowd']}")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
