"""Localization and detection on shapes, each run end to end through its shipped pipeline.

    python benchmarks/detection.py [NAME ...] [--output DIR] [--threads N]

NAME is shapes-detect and/or shapes-localize (default: both). For each it prints the held-out
test metrics (the pipeline's eval step, scored by datakit.metrics with pycocotools' protocol),
the train-step time, the CPU seconds of the whole pipeline (this process and its children) and
the goals of issue 17 (2 CPU cores):

    shapes-detect    test mAP50 >= 0.90 and mAP >= 0.70, training within 15 minutes (default detector)
    shapes-localize  test accuracy >= 0.95 and mean box IoU >= 0.80, training within 5 minutes

The calibration it is measured against (issue 17, torchvision detectors from scratch, 1,000
shapes images, AdamW 1e-3, 2 CPU threads for 10 minutes): Faster R-CNN MobileNet-320 mAP50
0.52 (mAP 0.33). Not a timed test: run it by hand, on a quiet machine. On a shared machine the
wall time means little; the CPU seconds are the honest proxy (2 cores x 15 minutes = 1,800 CPU-s,
2 cores x 5 minutes = 600 CPU-s; the pipeline's sample, ingest and eval steps add a few tens).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from measure import cpu_seconds  # noqa: E402

# name: ({metric: minimum}, maximum train-step seconds)
TARGETS: dict[str, tuple[dict[str, float], float]] = {
    "shapes-detect": ({"map50": 0.90, "map": 0.70}, 15 * 60.0),
    "shapes-localize": ({"accuracy": 0.95, "box_iou": 0.80}, 5 * 60.0),
}


def check(name: str, metrics: dict[str, float], train_seconds: float, cpu_seconds: float | None = None,
          cores: int = 2) -> str:
    minimums, seconds = TARGETS[name]
    verdicts = [f"{m} >= {low:.2f}: {'PASS' if (metrics.get(m) or 0.0) >= low else 'FAIL'}"
                for m, low in minimums.items()]
    verdicts.append(f"train <= {seconds:.0f}s: {'PASS' if train_seconds <= seconds else 'FAIL'}")
    if cpu_seconds is not None:
        budget = seconds * cores
        verdicts.append(f"pipeline <= {budget:.0f} CPU-s: {'PASS' if cpu_seconds <= budget else 'FAIL'}")
    return "; ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--output", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the goals assume 2 cores)")
    parser.add_argument("--device", default="cpu", help="train.device (cpu, cuda, auto)")
    parser.add_argument("--epochs", type=int, default=None, help="cap train.epochs (a quick check, not the goal)")
    args = parser.parse_args()

    import torch

    from datakit.pipeline import run_pipeline

    torch.set_num_threads(args.threads)
    work = args.output or Path(tempfile.mkdtemp(prefix="datakit-bench-detection-"))
    try:
        for name in args.names:
            started, cpu_started = time.perf_counter(), cpu_seconds()
            overrides = {"train.train.threads": args.threads, "train.train.device": args.device}
            if args.epochs:
                overrides["train.train.epochs"] = args.epochs
            result = run_pipeline(REPO / "pipelines" / f"{name}.yaml", work / name, overwrite=True,
                                  overrides=overrides, show_progress=False)
            total, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
            train_step = next(s for s in result.steps if s.step == "train")
            evaluation = result.results("eval")
            trained = train_step.results
            metrics = {k: v for k, v in evaluation.items() if isinstance(v, float)}
            print(f"{name}")
            print(f"  torch threads   {args.threads} (machine: {os.cpu_count()} cores), device {args.device}")
            print(f"  epochs          {trained['epochs']} (best {trained['monitor']} "
                  f"{trained['best_metric']:.4f} at epoch {trained['best_epoch']})")
            print(f"  test            " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                  + f" ({evaluation['images']} held-out images)")
            print(f"  time            train {train_step.seconds:.1f}s, pipeline {total:.1f}s wall, "
                  f"{cpu:.0f} CPU-s (load average {os.getloadavg()[0]:.1f})")
            print(f"  goal            {check(name, metrics, train_step.seconds, cpu, args.threads)}", flush=True)
    finally:
        if args.output is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
