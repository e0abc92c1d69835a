"""The README's first command: ``pipelines/demo.yaml`` end to end on built-in data.

Run as ``python -m datakit.demo --output DIR`` (``make demo``); it is ``datakit run
pipelines/demo.yaml -o DIR --overwrite``: sample digits -> ingest -> info -> train a small CNN
-> eval on the held-out test split, each step printing what it did.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from datakit.errors import DatakitError

DEMO_PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml"


def run_demo(output: Path, seed: int = 0, show_progress: bool = True) -> object:
    from datakit.pipeline import run_pipeline

    if not DEMO_PIPELINE.is_file():
        raise DatakitError(f"{DEMO_PIPELINE}: demo pipeline not found (run the demo from a source checkout)")
    if output.is_dir() and {p.name for p in output.iterdir()} <= {"shapes", "shapes.manifest"}:
        shutil.rmtree(output)  # what the earlier demo (before pipelines) wrote
    console = Console()
    result = run_pipeline(DEMO_PIPELINE, output, seed=seed, overwrite=True, show_progress=show_progress,
                          console=console)
    # a rule cuts a long title; the output path is printed on its own line so it is never cut
    console.rule(f"demo done in {result.seconds:.1f}s")
    console.print(f"outputs under {output}/ (pipeline.json lists every step)", soft_wrap=True, highlight=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("demo_out"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        run_demo(args.output, args.seed)
    except DatakitError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
