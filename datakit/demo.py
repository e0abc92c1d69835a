"""The README's first command: built-in data through every step that exists so far.

Run as ``python -m datakit.demo --output DIR``; each step prints what it did.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rich.console import Console

from datakit import render
from datakit.info import info
from datakit.ingest import ingest
from datakit.samples import sample


def run_demo(output: Path, seed: int = 0) -> None:
    console = Console()
    started = time.perf_counter()
    if output.exists():
        shutil.rmtree(output)
    console.rule("1. sample: generate the built-in 'shapes' data set")
    shapes = sample("shapes", output / "shapes", seed=seed, count=400)
    console.print(f"{shapes.images} images, classes {shapes.classes}", highlight=False)
    console.rule("2. ingest: folder of class sub-folders -> manifest")
    result = ingest(shapes.image_folder, output / "shapes.manifest")
    render.ingest_summary(console, result)
    console.rule("3. info: what the manifest holds")
    render.info_tables(console, info(output / "shapes.manifest"))
    console.rule(f"done in {time.perf_counter() - started:.1f}s; outputs under {output}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("demo_out"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_demo(args.output, args.seed)


if __name__ == "__main__":
    main()
