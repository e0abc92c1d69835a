"""Offline augmentation throughput: `datakit augment` against a bare loop, in the same run.

    python benchmarks/augment.py                    # 2,000 JPEGs 512x512, medium preset (the issue's benchmark)
    python benchmarks/augment.py --images 300       # a quick look

The bare loop is the least a script can do: for each file, OpenCV decode -> the same albumentations
pipeline (the `medium` preset for classification, reseeded per image) -> JPEG encode (quality 95,
as datakit writes) -> write the bytes. `datakit augment` does that plus its bookkeeping: manifest
load, per-image seed, sha256 of every output, lineage (applied parameters), hard links for the
carried originals and the atomic manifest write (images without boxes or masks skip the box
processor, as the bare loop does). OpenCV runs one thread on both sides (`cv2.setNumThreads(1)`);
datakit's second worker is a second process, compared with the one-thread bare loop. Files are
generated first, so every run reads from a warm page cache.
Goal (issue 14): >= 0.8x the bare loop's images/s with 1 worker, >= 1.6x with 2.

Wall-clock ratios only mean something on a quiet machine. The CPU time per image is printed too:
the bare loop's, datakit's with 1 worker (all in this process), and with 2 workers split into the
parent's (bookkeeping) and the workers' (rendering); on a busy machine those show the overhead.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datakit  # noqa: E402
from datakit.augmentation.render import ENCODING  # noqa: E402
from datakit.augmentation.specs import resolve  # noqa: E402


def generate(folder: Path, images: int, side: int, seed: int) -> None:
    """Varied photo-like content (blurred noise, discs, grain) in 4 class folders, JPEG quality 90."""
    rng = np.random.default_rng(seed)
    bases = [cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), side / 20)
             for _ in range(8)]
    for i in range(images):
        image = bases[i % len(bases)].copy()
        for _ in range(4):
            centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(image, centre, int(rng.integers(8, side // 4)), colour, -1)
        image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
        out = folder / f"class_{i % 4}" / f"img_{i:05d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def bare_loop(files: list[Path], out: Path, seed: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process) for decode -> pipeline -> encode -> write over ``files``."""
    transform = resolve("medium", task="classification", seed=seed).image_only()
    out.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    for i, path in enumerate(files):
        image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
        transform.set_random_seed(seed + i)
        augmented = transform(image=image)["image"]
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(augmented, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, ENCODING["jpeg_quality"]])
        (out / f"{i:05d}.jpg").write_bytes(data.tobytes())
    return time.perf_counter() - started, time.process_time() - cpu, 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def datakit_run(manifest: Path, out: Path, workers: int, seed: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process: all of the work for 1 worker, only the parent's for 2,
    CPU seconds of the worker processes)."""
    started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    result = datakit.augment(manifest, out, preset="medium", copies=1, split="all", seed=seed, workers=workers,
                             show_progress=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.derived == result.sources
    return seconds, cpu, _children_cpu() - children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, in rotating order; the best is kept")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    work = args.keep or Path(tempfile.mkdtemp(prefix="datakit-augment-bench-"))
    try:
        images = work / "images"
        if not images.exists():
            generate(images, args.images, args.side, args.seed)
        manifest = work / "manifest"
        if not manifest.exists():
            datakit.ingest(images, manifest, show_progress=False)
        files = sorted(images.rglob("*.jpg"))
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        best_workers_cpu: dict[str, float] = {}
        sides = [("bare loop", lambda o: bare_loop(files, o, args.seed)),
                 ("datakit 1 worker", lambda o: datakit_run(manifest, o, 1, args.seed)),
                 ("datakit 2 workers", lambda o: datakit_run(manifest, o, 2, args.seed))]
        for attempt in range(args.repeat):
            # each repeat starts with another side, so no side always runs first (cold) or last
            for name, run in sides[attempt % 3:] + sides[:attempt % 3]:
                out = work / f"out-{attempt}-{name.replace(' ', '-')}"
                seconds, cpu, workers_cpu = run(out)
                best[name] = min(best.get(name, float("inf")), seconds)
                best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu)
                best_workers_cpu[name] = min(best_workers_cpu.get(name, float("inf")), workers_cpu)
                shutil.rmtree(out, ignore_errors=True)
        bare = len(files) / best["bare loop"]
        report = {"images": len(files), "side": args.side, "preset": "medium", "repeat": args.repeat}
        for name, seconds in best.items():
            rate = len(files) / seconds
            report[name] = {"seconds": round(seconds, 2), "images_per_s": round(rate, 1),
                            "vs_bare": round(rate / bare, 2), "cpu_seconds": round(best_cpu[name], 2),
                            "workers_cpu_seconds": round(best_workers_cpu[name], 2)}
            print(f"{name:18s} {seconds:7.2f} s  {rate:7.1f} images/s  {rate / bare:5.2f}x bare   "
                  f"CPU {best_cpu[name]:6.2f} s (+ workers {best_workers_cpu[name]:6.2f} s)", flush=True)
        # on a busy machine wall time swings with the neighbours; CPU time per image shows datakit's
        # own overhead whatever the load
        per = {name: 1000 * best_cpu[name] / len(files) for name in best_cpu}
        print(f"CPU per image: bare {per['bare loop']:.2f} ms; datakit 1 worker {per['datakit 1 worker']:.2f} ms; "
              f"2 workers: parent {per['datakit 2 workers']:.2f} ms + workers "
              f"{1000 * best_workers_cpu['datakit 2 workers'] / len(files):.2f} ms", flush=True)
        print(json.dumps(report))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
