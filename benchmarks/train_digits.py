"""Accuracy benchmark: digits -> manifest -> train with configs/digits-cnn.yaml -> held-out test.

    python benchmarks/train_digits.py [--output DIR] [--seed N] [--threads N]

Target (issue #3): held-out test accuracy >= 98.5% with training under 2 minutes on 2 CPU cores.
Prints the test accuracy from ``datakit.evaluate`` on the test split that training never saw,
and wall-clock times. Not a timed test: run it by hand, on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_benchmark(sample_name: str, sample_args: dict[str, Any], default_config: Path, target_accuracy: float,
                  target_seconds: float | None, description: str) -> None:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--config", type=Path, default=default_config)
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed (split and init)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target assumes 2 cores)")
    args = parser.parse_args()

    import torch

    import datakit

    torch.set_num_threads(args.threads)
    work = args.output or Path(tempfile.mkdtemp(prefix=f"datakit-bench-{sample_name}-"))
    if work.exists():
        shutil.rmtree(work)
    started = time.perf_counter()
    data = datakit.sample(sample_name, work / sample_name, show_progress=False, **sample_args)
    datakit.ingest(data.image_folder, work / "manifest", show_progress=False)
    prepared = time.perf_counter()
    overrides = {"seed": args.seed} if args.seed is not None else {}
    result = datakit.train(work / "manifest", args.config, work / "run", show_progress=False,
                           **{"train.threads": args.threads}, **overrides)
    trained = time.perf_counter()
    metrics = datakit.evaluate(result.run_dir, split="test", show_progress=False)
    done = time.perf_counter()

    train_seconds = trained - prepared
    passed = metrics["accuracy"] >= target_accuracy and (target_seconds is None or train_seconds <= target_seconds)
    config_name = args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config
    print(f"data              {sample_name}: {data.images} images {data.classes}")
    print(f"config            {config_name}")
    print(f"torch threads     {torch.get_num_threads()} (machine: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at the end)")
    print(f"split             {result.notes[-1] if result.notes else 'from the manifest'}")
    print(f"epochs            {result.epochs_run} (best val accuracy {result.best_metric:.4f} at epoch {result.best_epoch})")
    print(f"test accuracy     {metrics['accuracy']:.4f} ({metrics['images'] - metrics['misclassified']}/"
          f"{metrics['images']} held-out test images), macro F1 {metrics['macro']['f1']:.4f}")
    print(f"wall time         sample+ingest {prepared - started:.1f}s, train {train_seconds:.1f}s, "
          f"eval {done - trained:.1f}s, total {done - started:.1f}s")
    limit = f" with train <= {target_seconds:.0f}s" if target_seconds is not None else ""
    print(f"target            test accuracy >= {target_accuracy}{limit}: {'PASS' if passed else 'FAIL'}")
    print(f"run directory     {result.run_dir}")


if __name__ == "__main__":
    run_benchmark("digits", {}, REPO / "configs" / "digits-cnn.yaml", 0.985, 120.0, __doc__)
