"""FCOS-R50 from scratch: its family defaults against the calibration settings it diverged with.

    python benchmarks/fcos_defaults.py [--count 120] [--size 64] [--epochs 4] [--threads 2] [--output DIR]

Issue 17's calibration trained FCOS-R50 from scratch with AdamW 1e-3 (no clipping, no warm-up)
and it diverged (mAP50 0.00). datakit's FCOS entry carries its own defaults (lr 1e-4, gradient
clipping at 1.0, two warm-up epochs; ``datakit/models/torchvision_detectors.py``). This trains
both, side by side on the same generated shapes data (input size = image size), and prints the
per-epoch training loss and validation mAP50, then the held-out test mAP of each:

    defaults     datakit train M --set model.name=fcos_resnet50_fpn
    calibration  the same with --set optim.lr=0.001 --set train.grad_clip=null --set schedule.warmup_epochs=0

A diverged run shows as a non-finite loss (datakit stops it and says so) or a loss that rises.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from measure import cpu_seconds  # noqa: E402

SETTINGS = {
    "defaults": {},
    "calibration": {"optim.lr": 1e-3, "train.grad_clip": None, "schedule.warmup_epochs": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    from datakit.errors import DatakitError
    from datakit.ingest import ingest
    from datakit.samples import make_shapes
    from datakit.training import train

    root = args.output or Path(tempfile.mkdtemp(prefix="fcos-"))
    make_shapes(root / "data", count=args.count, size=args.size, seed=0)
    ingest(root / "data", root / "manifest", format="coco", show_progress=False)
    for name, extra in SETTINGS.items():
        start, cpu = time.perf_counter(), cpu_seconds()
        try:
            result = train(root / "manifest", None, root / name, show_progress=False, task="detect",
                           epochs=args.epochs, batch_size=args.batch_size, image_size=args.size, device="cpu",
                           **{"model.name": "fcos_resnet50_fpn", "train.threads": args.threads,
                              "data.val_fraction": 0.15, "data.test_fraction": 0.15, **extra})
        except DatakitError as exc:  # a non-finite loss stops the run with one line
            print(f"{name:<12} stopped: {exc}")
            continue
        losses = [h["train_loss"] for h in result.history]
        maps = [h.get("val_map50", float("nan")) for h in result.history]
        test = result.test_metrics or {}
        print(f"{name:<12} {extra or 'family defaults'}")
        print(f"{'':<12} train_loss per epoch: {', '.join(f'{v:.3f}' for v in losses)}"
              f"  (finite: {all(math.isfinite(v) for v in losses)}, falling: {losses[-1] < losses[0]})")
        print(f"{'':<12} val mAP50 per epoch:  {', '.join(f'{v:.3f}' for v in maps)}")
        print(f"{'':<12} test mAP50 {test.get('map50', float('nan')):.3f}, mAP {test.get('map', float('nan')):.3f}; "
              f"{time.perf_counter() - start:.0f} s wall, {cpu_seconds() - cpu:.0f} CPU s")


if __name__ == "__main__":
    main()
