"""Near-duplicate quality: precision and recall on distinct generated images with planted copies.

    python benchmarks/near_duplicates.py --count 10000 --planted 500 [--out DIR] [--keep]

Writes ``count`` JPEGs of distinct content (crops and mixes of real photos, textures; see
dupdata.py) and ``planted`` transformed copies (resize, JPEG quality 50, 5% crop, +-30
brightness, horizontal flip; equal shares), ingests them, runs the duplicate search, and scores
the predicted pairs (every pair inside a predicted cluster) against the planted ones.
Goal: recall >= 0.9 at precision >= 0.95.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dupdata import make_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    from datakit.ingest import ingest
    from datakit.manifest import load_manifest
    from datakit.report.base import ReportContext

    out = args.out or Path(tempfile.mkdtemp(prefix="dupbench-"))
    started = time.perf_counter()
    if not (out / "manifest").exists():
        pairs = make_set(out, args.count, args.planted, args.seed)
        (out / "planted.json").write_text(json.dumps(pairs))
        ingest(out / "images", out / "manifest", layout="unlabeled", workers=args.workers or None, show_progress=False)
    pairs = [tuple(p) for p in json.loads((out / "planted.json").read_text())]
    made = time.perf_counter() - started

    m = load_manifest(out / "manifest")
    ctx = ReportContext(m, out / "manifest", workers=args.workers or None, show_progress=False)
    t0 = time.perf_counter()
    ctx.stats()
    t1 = time.perf_counter()
    clusters = ctx.duplicates()
    t2 = time.perf_counter()

    rows = ctx.pixel_rows()
    path_of = dict(zip(range(len(rows)), rows["path"].astype(str)))
    predicted = set()
    for group in clusters.groups():
        for i, j in itertools.combinations(sorted(group.tolist()), 2):
            predicted.add(tuple(sorted((path_of[i], path_of[j]))))
    truth = {tuple(sorted((a, b))): kind for a, b, kind in pairs}
    hits = predicted & set(truth)
    found_by_kind = Counter(truth[p] for p in hits)
    total_by_kind = Counter(truth.values())
    precision = len(hits) / len(predicted) if predicted else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    result = {
        "images": len(rows), "planted": len(truth), "predicted_pairs": len(predicted), "true_pairs_found": len(hits),
        "precision": round(precision, 4), "recall": round(recall, 4),
        "recall_by_transform": {k: round(found_by_kind[k] / total_by_kind[k], 3) for k in sorted(total_by_kind)},
        "seconds": {"generate_and_ingest": round(made, 1), "pixel_statistics": round(t1 - t0, 1),
                    "duplicate_search": round(t2 - t1, 2)},
        "goal_met": recall >= 0.9 and precision >= 0.95,
        "data": str(out),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
