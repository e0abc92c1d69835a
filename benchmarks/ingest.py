"""Ingest throughput and memory: `datakit ingest` against a naive baseline, in the same run.

    python benchmarks/ingest.py                      # 5,000 JPEGs 640x480 (the issue's benchmark)
    python benchmarks/ingest.py --files 100000 --side 16 --format png --skip-baseline   # memory at scale

The baseline is what people write first: for each file, sequentially, PIL open + full decode +
sha256 of the bytes. datakit runs as a subprocess (`python -m datakit ingest`) with its defaults
(all cores, structural checks); its peak memory is the peak of the summed RSS of its process tree,
sampled every 20 ms from /proc. Files are generated first, so both runs read from a warm page cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402


def generate(folder: Path, files: int, side: int, height: int, fmt: str, seed: int) -> None:
    """Varied content: gradients, random shapes, noise; 10 class folders."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, height, side, 3), dtype=np.uint8)
    bases = [cv2.GaussianBlur(b, (0, 0), max(1.0, side / 20)) for b in base]
    for i in range(files):
        image = bases[i % len(bases)].copy()
        for _ in range(3):
            centre = (int(rng.integers(0, side)), int(rng.integers(0, height)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(image, centre, int(rng.integers(2, max(3, side // 4))), colour, -1)
        image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
        out = folder / f"class_{i % 10}" / f"img_{i:06d}.{fmt}"
        if i < 10:
            out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image)


def naive_baseline(folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(path) as img:
            img.load()
            img.size
        count += 1
    return time.perf_counter() - started, count


def run_datakit(folder: Path, manifest: Path) -> tuple[float, int, dict]:
    command = [sys.executable, "-m", "datakit", "ingest", str(folder), "-o", str(manifest), "--json"]
    stdout, elapsed, peak = run_measured(command)
    return elapsed, peak, json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--side", type=int, default=640, help="image width (height is 3/4 of it)")
    parser.add_argument("--format", default="jpg", choices=["jpg", "png"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="datakit-bench-"))
    folder = workdir / "images"
    height = max(1, args.side * 3 // 4)
    try:
        if not folder.exists():
            t0 = time.perf_counter()
            generate(folder, args.files, args.side, height, args.format, args.seed)
            print(f"generated {args.files} {args.format} files {args.side}x{height} in {time.perf_counter() - t0:.1f}s")
        total_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        print(f"data: {total_mb:.0f} MB, cores: {os.cpu_count()}")
        shutil.rmtree(workdir / "manifest", ignore_errors=True)  # a fresh ingest, not an incremental one
        elapsed, peak, result = run_datakit(folder, workdir / "manifest")
        print(f"datakit ingest, fresh (default: {os.cpu_count()} workers, structure checks): {elapsed:.2f}s "
              f"({result['images'] / elapsed:.0f} files/s), peak memory {peak / 2**20:.0f} MiB, status {result['status']}")
        again, _, result2 = run_datakit(folder, workdir / "manifest")
        print(f"datakit ingest again (incremental, nothing changed): {again:.2f}s, unchanged {result2['incremental']['unchanged']}")
        if not args.skip_baseline:
            baseline, count = naive_baseline(folder)
            print(f"naive baseline (sequential PIL open + full decode + sha256): {baseline:.2f}s ({count / baseline:.0f} files/s)")
            print(f"ratio: datakit is {baseline / elapsed:.1f}x faster than the baseline")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
