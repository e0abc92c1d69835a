"""Near-duplicate search scaling: time on 50k, 100k and 200k synthetic perceptual hashes, side by side.

    python benchmarks/hash_scaling.py [--sizes 50000,100000,200000] [--planted-fraction 0.02]

Hashes are random unit vectors (the perceptual hash's shape: HASH_SIDE**2 values, DC 0) with a
fraction of planted near copies (small noise, random flip/rotation). No all-pairs comparison: the
time should grow about linearly (ratio ~2 per doubling). Recall on the planted copies is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datakit import hashing  # noqa: E402


def synthetic(n: int, planted: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    d = hashing.HASH_SIDE ** 2
    base = rng.normal(size=(n - planted, d)).astype(np.float32)
    base[:, 0] = 0
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    src = rng.choice(n - planted, planted, replace=False)
    noise = rng.normal(size=(planted, d)).astype(np.float32) * 0.04
    noise[:, 0] = 0
    copies = base[src] + noise
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    copies = hashing.variants(copies)[np.arange(planted), rng.integers(0, 8, planted)]
    return np.vstack([base, copies]), {(int(s), n - planted + i) for i, s in enumerate(src)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,100000,200000")
    parser.add_argument("--planted-fraction", type=float, default=0.02)
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        hashes, truth = synthetic(n, int(n * args.planted_fraction))
        started = time.perf_counter()
        found, _, _ = hashing.near_duplicate_pairs(hashes)
        seconds = time.perf_counter() - started
        candidates = hashing.candidate_pairs(hashes)  # counted outside the timing
        hits = {tuple(p) for p in found.tolist()} & truth
        rows.append({"hashes": n, "seconds": round(seconds, 2), "candidate_pairs": int(len(candidates)),
                     "candidates_per_hash": round(len(candidates) / n, 2), "confirmed": int(len(found)),
                     "recall": round(len(hits) / len(truth), 4)})
        print(json.dumps(rows[-1]), flush=True)
    for a, b in zip(rows, rows[1:]):
        print(f"{a['hashes']} -> {b['hashes']}: time x{b['seconds'] / a['seconds']:.2f} for x{b['hashes'] / a['hashes']:.0f} hashes")


if __name__ == "__main__":
    main()
