"""`datakit eval --predictions` against pycocotools' COCOeval on the same generated COCO data.

    python benchmarks/eval_coco.py                       # 5,000 images, 50,000 boxes, 50,000 predictions
    python benchmarks/eval_coco.py --images 500 --boxes 5000 --predictions 5000 --keep /tmp/eval-bench

The data (``datakit.metrics.synthetic.detection_set``): 640x480 images, 12 categories with sparse
ids, 5% crowd regions, empty images, images without predictions, one image with more detections
than maxDets, objects on the area-range borders, scores rounded to 2 decimals (many ties).
The ground truth is a datakit manifest; pycocotools reads it as datakit's COCO export writes it.

Both sides run in this one process, one after the other, end to end: pycocotools loads the
ground truth JSON and the results JSON (``COCO()``, ``loadRes``), then evaluate, accumulate,
summarize; datakit runs ``evaluate_predictions`` on the manifest and the results JSON (load,
lint, evaluate, accumulate, summarize, metrics.json) with plots off. Imports happen before the
clocks start on both sides. The numbers must agree (the 12 statistics and the precision, recall
and scores arrays to 1e-6) or the benchmark fails. It also times the CLI from outside
(``datakit eval --predictions ... --no-plots --json``, interpreter start-up included).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=50000)
    parser.add_argument("--predictions", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="Write the data here and keep it.")
    args = parser.parse_args()

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from datakit.convert import export
    from datakit.manifest import save_manifest
    from datakit.metrics import coco, scoring, synthetic

    work = args.keep or Path(tempfile.mkdtemp(prefix="datakit-eval-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        manifest, predictions = synthetic.detection_set(
            args.images, args.boxes, args.predictions, seed=args.seed, n_categories=12, size=(640, 480),
            empty_images=max(2, args.images // 100))
        save_manifest(manifest, work / "manifest")
        export(work / "manifest", "coco", work / "coco", images="none")
        gt_json = work / "coco" / "annotations" / "instances.json"
        results = work / "predictions.json"
        results.write_text(json.dumps(predictions))
        print(f"data: {args.images} images, {len(manifest.annotations)} ground-truth boxes "
              f"({int(manifest.annotations['iscrowd'].sum())} crowd), {len(predictions)} predictions "
              f"(generated in {time.perf_counter() - started:.1f} s)")

        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(gt_json))
            dt = gt.loadRes(str(results))
            reference = COCOeval(gt, dt, "bbox")
            reference.evaluate()
            reference.accumulate()
            reference.summarize()
        pycoco_s = time.perf_counter() - started

        started = time.perf_counter()
        result, extras = scoring.score(results, work / "manifest", plots=False, output=work / "report")
        datakit_s = time.perf_counter() - started

        for name in ("precision", "recall", "scores"):
            diff = float(np.abs(reference.eval[name] - getattr(extras["bbox"], name)).max())
            if diff > 1e-6:
                raise SystemExit(f"{name} differs from pycocotools by {diff}")
        stats_diff = float(np.abs(coco.as_pycocotools(result["bbox"]["stats"]) - reference.stats).max())
        if stats_diff > 1e-6:
            raise SystemExit(f"statistics differ from pycocotools by {stats_diff}")

        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "datakit", "eval", "--predictions", str(results), "--manifest",
                        str(work / "manifest"), "--no-plots", "--json", "-o", str(work / "report-cli")],
                       check=True, stdout=subprocess.DEVNULL)
        cli_s = time.perf_counter() - started

        print(f"pycocotools COCOeval (load GT + loadRes + evaluate + accumulate + summarize): {pycoco_s:.2f} s")
        print(f"datakit evaluate_predictions (load manifest + results, lint, evaluate, summarize): {datakit_s:.2f} s")
        print(f"ratio: {pycoco_s / datakit_s:.1f}x faster; same numbers (12 stats and arrays within 1e-6; "
              f"max stat difference {stats_diff:.1e})")
        print(f"datakit eval CLI, wall time with interpreter start-up: {cli_s:.2f} s")
        print(f"mAP {result['map']:.4f}  mAP50 {result['map50']:.4f}  AR100 {result['ar100']:.4f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
