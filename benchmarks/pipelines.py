"""Accuracy and time of the shipped pipelines, each run end to end through `datakit run`.

    python benchmarks/pipelines.py [NAME ...] [--output DIR] [--threads N]

NAME is one of the pipelines below (default: all). For each it prints the held-out test accuracy
(the pipeline's eval step), the time of the train step and of the whole pipeline, and the target:

    digits-cnn       test accuracy >= 98.5%, training under 2 minutes on 2 CPU cores
    shapes-classify  test accuracy >= 98%
    demo             the whole pipeline (`make demo`) under 3 minutes on 2 CPU cores

Not a timed test: run it by hand, on a quiet machine.
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

# name: (minimum test accuracy, maximum train-step seconds, maximum pipeline seconds)
TARGETS: dict[str, tuple[float | None, float | None, float | None]] = {
    "digits-cnn": (0.985, 120.0, None),
    "shapes-classify": (0.98, None, None),
    "demo": (None, None, 180.0),
}


def check(name: str, accuracy: float, train_seconds: float, total_seconds: float) -> str:
    low, train_max, total_max = TARGETS[name]
    verdicts = []
    if low is not None:
        verdicts.append(f"test >= {low:.3f}: {'PASS' if accuracy >= low else 'FAIL'}")
    if train_max is not None:
        verdicts.append(f"train <= {train_max:.0f}s: {'PASS' if train_seconds <= train_max else 'FAIL'}")
    if total_max is not None:
        verdicts.append(f"pipeline <= {total_max:.0f}s: {'PASS' if total_seconds <= total_max else 'FAIL'}")
    return "; ".join(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--output", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the targets assume 2 cores)")
    args = parser.parse_args()

    import torch

    from datakit.pipeline import run_pipeline

    torch.set_num_threads(args.threads)
    work = args.output or Path(tempfile.mkdtemp(prefix="datakit-bench-pipelines-"))
    try:
        for name in args.names:
            started = time.perf_counter()
            result = run_pipeline(REPO / "pipelines" / f"{name}.yaml", work / name, overwrite=True,
                                  overrides={"train.train.threads": args.threads}, show_progress=False)
            total = time.perf_counter() - started
            train_step = next(s for s in result.steps if s.step == "train")
            evaluation = result.results("eval")
            trained = train_step.results
            print(f"{name}")
            print(f"  torch threads   {args.threads} (machine: {os.cpu_count()} cores)")
            print(f"  epochs          {trained['epochs']} (best {trained['monitor']} "
                  f"{trained['best_metric']:.4f} at epoch {trained['best_epoch']})")
            print(f"  test accuracy   {evaluation['accuracy']:.4f} ({evaluation['images']} held-out images)")
            print(f"  time            train {train_step.seconds:.1f}s, pipeline {total:.1f}s")
            print(f"  target          {check(name, evaluation['accuracy'], train_step.seconds, total)}", flush=True)
    finally:
        if args.output is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
