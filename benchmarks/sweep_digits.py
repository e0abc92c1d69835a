"""Accuracy benchmark: the digits hyperparameter sweep, end to end, through `datakit run`.

    python benchmarks/sweep_digits.py [--output DIR] [--trials N] [--threads N]

Runs ``pipelines/digits-sweep.yaml`` (sample digits -> ingest -> TPE sweep with pruning over
``configs/digits-space.yaml`` -> eval of the best trial on the held-out test split) and prints the
best configuration, its validation and test accuracy, the trials by state, and the time taken.

Target (issue #3): the best configuration, chosen on validation accuracy only, reaches >= 99.0%
test accuracy on scikit-learn's digits. Not a timed test: run it by hand, on a quiet machine.
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

TARGET_TEST_ACCURACY = 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--pipeline", type=Path, default=REPO / "pipelines" / "digits-sweep.yaml")
    parser.add_argument("--trials", type=int, default=None, help="replace the space's number of trials")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per trial (the target assumes 2 cores)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args()

    import torch

    from datakit.pipeline import run_pipeline

    torch.set_num_threads(args.threads)
    work = args.output or Path(tempfile.mkdtemp(prefix="datakit-bench-sweep-"))
    overrides: dict[str, object] = {"sweep.train.threads": args.threads}
    if args.trials:
        overrides["sweep.trials"] = args.trials
    started = time.perf_counter()
    try:
        result = run_pipeline(args.pipeline, work / "run", overrides=overrides, overwrite=True, show_progress=False)
        seconds = time.perf_counter() - started
        sweep = result.results("sweep")
        evaluation = result.results("eval")
        sweep_seconds = next(s.seconds for s in result.steps if s.id == "sweep")
        passed = evaluation["accuracy"] >= TARGET_TEST_ACCURACY
        print(f"pipeline          {args.pipeline.relative_to(REPO) if args.pipeline.is_relative_to(REPO) else args.pipeline}")
        print(f"torch threads     {args.threads} per trial (machine: {os.cpu_count()} cores)")
        print(f"trials            {sum(sweep['counts'].values())} ({', '.join(f'{n} {s}' for s, n in sorted(sweep['counts'].items()))})")
        print(f"best trial        #{sweep['best_trial']} (chosen on validation accuracy only)")
        for key, value in sweep["best_params"].items():
            print(f"  {key:<28}{value:.4g}" if isinstance(value, float) else f"  {key:<28}{value}")
        print(f"val accuracy      {sweep['val_accuracy']:.4f}")
        print(f"test accuracy     {evaluation['accuracy']:.4f} ({evaluation['images']} held-out test images, "
              f"datakit eval of the best checkpoint)")
        print(f"time              sweep {sweep_seconds:.1f}s, whole pipeline {seconds:.1f}s")
        print(f"results           {sweep['output']}/results.csv")
        print(f"target            test accuracy >= {TARGET_TEST_ACCURACY:.3f}: {'PASS' if passed else 'FAIL'}")
    finally:
        if args.output is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.output is None:
            print(f"kept              {work}")


if __name__ == "__main__":
    main()
