"""The `datakit` command: thin Typer functions that parse options, call the library, render results.

No logic lives here. Errors the user can fix print one line and exit 2 (1 for a failed check);
Ctrl-C exits 130 and leaves what was written before intact.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from datakit import render
from datakit.errors import DatakitError

app = typer.Typer(
    name="datakit",
    help="From a folder of images to a trained, evaluated model you can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatakitError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold yellow]interrupted:[/] nothing was written; the previous output is intact")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
@handle_errors
def ingest(
    src: Path = typer.Argument(..., help="Folder of images."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest directory to write (updated in place if it exists)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV with columns file,label[,split] for a flat folder."),
    layout: str = typer.Option("auto", help="auto, classes, splits, flat or unlabeled."),
    workers: int = typer.Option(0, help="Worker processes (0 = all cores)."),
    verify: str = typer.Option("structure", help="structure (cheap end-of-file checks) or decode (full decode)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, write nothing) if any file is broken."),
    incremental: bool = typer.Option(True, "--incremental/--no-incremental", help="Re-read only new or changed files."),
    allow_outside: bool = typer.Option(False, "--allow-outside", help="Follow symlinks that resolve outside SRC."),
    table_format: str = typer.Option("parquet", "--table-format", help="parquet, csv or jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Scan a folder of images into a manifest."""
    from datakit.ingest import ingest as run_ingest

    result = run_ingest(
        src, output, labels=labels, layout=layout, workers=workers or None, verify=verify, strict=strict,
        incremental=incremental, allow_outside=allow_outside, table_format=table_format,
        show_progress=not as_json,
    )
    if as_json:
        print_json(result.as_dict())
    else:
        render.ingest_summary(out, result)


@app.command()
@handle_errors
def sample(
    name: str = typer.Argument(..., help="shapes or digits."),
    output: Path = typer.Option(..., "-o", "--output", help="New folder to write the data set into."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same files."),
    count: int = typer.Option(400, help="shapes: number of images."),
    size: Optional[int] = typer.Option(None, help="Image side in pixels (shapes: 64, digits: 8)."),
    objects: str = typer.Option("1,3", help="shapes: MIN,MAX objects per image."),
    imbalance: float = typer.Option(1.0, help="shapes: last class gets this fraction of the first class's images."),
    noise: float = typer.Option(8.0, help="shapes: Gaussian pixel noise (standard deviation)."),
    image_format: str = typer.Option("png", "--image-format", help="shapes: png or jpg."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write a built-in data set (generated locally, no network)."""
    from datakit.samples import sample as run_sample

    try:
        low, high = (int(v) for v in objects.split(","))
    except ValueError:
        raise DatakitError(f"--objects must be MIN,MAX (two integers), got {objects!r}") from None
    result = run_sample(name, output, seed=seed, count=count, size=size, objects=(low, high),
                        imbalance=imbalance, noise=noise, image_format=image_format, show_progress=not as_json)
    if as_json:
        print_json(result.as_dict())
    else:
        table = Table(title=f"sample {result.name}: {result.images} images in {result.image_folder}")
        table.add_column("class")
        table.add_column("images", justify="right")
        for label, n in result.classes.items():
            table.add_row(label, str(n))
        out.print(table)


@app.command()
@handle_errors
def info(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Counts per class, split, status and format of a manifest."""
    from datakit.info import info as run_info

    data = run_info(manifest)
    if as_json:
        print_json(data)
    else:
        render.info_tables(out, data)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
