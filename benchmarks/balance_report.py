"""The whole balance report on many generated JPEGs: first run (decodes everything) and cached run.

    python benchmarks/balance_report.py --images 100000 --side 256 --workers 2   # the issue's benchmark
    python benchmarks/balance_report.py --images 2000                            # a quick check

Images are written first (not timed) by `datakit sample shapes --image-format jpg` (class folders,
varied backgrounds and shapes) and ingested (timed separately). Then `datakit balance-report --json`
runs twice as a subprocess: the first run computes every pixel statistic and fills the cache beside
the manifest; the second reads the cache and decodes nothing. Peak memory is the summed RSS of the
process tree (benchmarks/measure.py). Goals: first run < 10 min on 2 cores and < 4 GB; cached < 1 min.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

DATAKIT = [sys.executable, "-m", "datakit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the data here (reused when present)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="reportbench-"))
    result: dict = {"images": args.images, "side": args.side, "workers": args.workers}
    if not (out / "manifest").exists():
        _, seconds, _ = run_measured([*DATAKIT, "sample", "shapes", "-o", str(out / "data"), "--count", str(args.images),
                                      "--size", str(args.side), "--image-format", "jpg", "--imbalance", "0.5", "--json"])
        result["generate_seconds"] = round(seconds, 1)
        _, seconds, peak = run_measured([*DATAKIT, "ingest", str(out / "data" / "images"), "-o", str(out / "manifest"),
                                         "--workers", str(args.workers), "--json"])
        result["ingest"] = {"seconds": round(seconds, 1), "peak_mb": round(peak / 2 ** 20)}
    for cache in ("pixel_stats.parquet", "pixel_stats.near_pairs.npz"):  # the first run computes everything
        (out / "manifest" / cache).unlink(missing_ok=True)
    command = [*DATAKIT, "balance-report", str(out / "manifest"), "--json", "--workers", str(args.workers),
               "--html", str(out / "report.html")]
    for run in ("first", "cached"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        stdout, seconds, peak = run_measured(command)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads(stdout)
        # CPU seconds of the report process (the figure to compare on a busy machine); pixel-statistics
        # workers started by the forkserver are not its reaped children, so their CPU is not in it
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result[run] = {"seconds": round(seconds, 1), "cpu_seconds_main": round(cpu, 1), "peak_mb": round(peak / 2 ** 20),
                       "decoded": report["sections"]["variance"]["decoded"]}
    result["metrics"] = report["metrics"]
    result["goals"] = {"first_under_10_min": result["first"]["seconds"] < 600,
                       "first_under_4_gb": result["first"]["peak_mb"] < 4096,
                       "cached_under_1_min": result["cached"]["seconds"] < 60}
    print(json.dumps(result, indent=2))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
