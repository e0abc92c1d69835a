"""Accuracy benchmark: 4000 shapes -> manifest -> train with configs/shapes-classify.yaml -> test.

    python benchmarks/train_shapes.py [--output DIR] [--seed N] [--threads N]

Target (issue #3): held-out test accuracy >= 98%. Prints the accuracy from ``datakit.evaluate``
on the 600-image test split that training never saw, and wall-clock times (several minutes on
2 CPU cores). Not a timed test: run it by hand, on a quiet machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_digits import REPO, run_benchmark  # noqa: E402

if __name__ == "__main__":
    run_benchmark("shapes", {"count": 4000, "seed": 0}, REPO / "configs" / "shapes-classify.yaml", 0.98, None, __doc__)
