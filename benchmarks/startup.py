"""Start-up cost of the CLI against the imports it cannot avoid, measured side by side in one run.

    python benchmarks/startup.py              # 9 interleaved runs of each command, medians
    python benchmarks/startup.py --runs 21

Two pairs (issue 11's goals):

- ``datakit --help``            vs ``python -c "import typer, rich.console"``    goal <= 2x
- ``datakit info SMALL``        vs ``python -c "import pandas, pyarrow.parquet"`` goal <= 1.3x

Each command is a fresh interpreter. CPU time (user + system, from wait4) is the main figure: it
is what every command pays and it is far less disturbed by other load on the machine than wall
time, which is printed too. Runs are interleaved (A B C D A B C D ...) so drift hits all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> tuple[float, float]:
    """CPU seconds (user + sys of the process and its children) and wall seconds of one run."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {stderr}")
    return usage.ru_utime + usage.ru_stime, wall


def small_manifest(folder: Path) -> Path:
    """20 generated shapes images, ingested: the 'small manifest' of the goal."""
    for args in (["sample", "shapes", "-o", str(folder / "shapes"), "--count", "20", "--json"],
                 ["ingest", str(folder / "shapes" / "images"), "-o", str(folder / "shapes.manifest"), "--json"]):
        subprocess.run([sys.executable, "-m", "datakit", *args], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    return folder / "shapes.manifest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        manifest = small_manifest(Path(tmp))
        commands = {
            "typer+rich import": [python, "-c", "import typer, rich.console"],
            "datakit --help": [python, "-m", "datakit", "--help"],
            "pandas+pyarrow import": [python, "-c", "import pandas, pyarrow.parquet"],
            "datakit info": [python, "-m", "datakit", "info", str(manifest)],
        }
        for command in commands.values():  # warm the page cache and .pyc files
            timed(command)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(timed(command))
    cpu = {name: statistics.median(c for c, _ in runs) for name, runs in samples.items()}
    wall = {name: statistics.median(w for _, w in runs) for name, runs in samples.items()}
    print(f"{'command':24} {'CPU s (median)':>15} {'wall s (median)':>16}   ({args.runs} runs each, interleaved)")
    for name in commands:
        print(f"{name:24} {cpu[name]:15.3f} {wall[name]:16.3f}")
    for fast, base, goal in (("datakit --help", "typer+rich import", 2.0), ("datakit info", "pandas+pyarrow import", 1.3)):
        ratio_cpu, ratio_wall = cpu[fast] / cpu[base], wall[fast] / wall[base]
        verdict = "meets" if ratio_cpu <= goal else "MISSES"
        print(f"{fast} / {base}: {ratio_cpu:.2f}x CPU, {ratio_wall:.2f}x wall  (goal <= {goal}x: {verdict})")


if __name__ == "__main__":
    main()
