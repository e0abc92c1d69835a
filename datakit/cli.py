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
    src: Path = typer.Argument(..., help="Folder of images, an annotated data set (COCO, VOC, YOLO, LabelMe, masks) or a COCO JSON file."),
    output: Path = typer.Option(..., "-o", "--output", help="Manifest directory to write (updated in place if it exists)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV with columns file,label[,split] for a flat folder."),
    layout: str = typer.Option("auto", help="auto, classes, splits, flat or unlabeled."),
    workers: int = typer.Option(0, help="Worker processes (0 = all cores)."),
    verify: str = typer.Option("structure", help="structure (cheap end-of-file checks) or decode (full decode)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, write nothing) if any file is broken."),
    incremental: bool = typer.Option(True, "--incremental/--no-incremental", help="Re-read only new or changed files."),
    allow_outside: bool = typer.Option(False, "--allow-outside", help="Follow symlinks that resolve outside SRC."),
    table_format: str = typer.Option("parquet", "--table-format", help="parquet, csv or jsonl."),
    format: Optional[str] = typer.Option(None, "--format", help="Annotation format: coco, voc, yolo, labelme, imagefolder, masks (default: detected)."),
    on_invalid: str = typer.Option("clip", "--on-invalid", help="Boxes outside the image or of zero size, bad objects: clip (and report), skip or fail."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Scan a folder of images, or read an annotation format, into a manifest."""
    from datakit.ingest import ingest as run_ingest

    result = run_ingest(
        src, output, labels=labels, layout=layout, workers=workers or None, verify=verify, strict=strict,
        incremental=incremental, allow_outside=allow_outside, table_format=table_format,
        show_progress=not as_json, format=format, on_invalid=on_invalid,
    )
    if as_json:
        print_json(result.as_dict())
    elif hasattr(result, "report"):
        render.format_ingest_summary(out, result)
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
        render.sample_summary(out, result)


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


@app.command()
@handle_errors
def train(
    manifest: Optional[Path] = typer.Argument(None, help="Manifest directory (with --resume: defaults to the run's)."),
    config: Optional[Path] = typer.Option(None, "-c", "--config", help="YAML config file."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Run directory to create (or continue with --resume)."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="KEY=VALUE for any config key, e.g. optim.lr=0.01 or model.conv.filters=[32,64]; repeatable."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="train.epochs"),
    lr: Optional[float] = typer.Option(None, "--lr", help="optim.lr"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="train.batch_size"),
    model: Optional[str] = typer.Option(None, "--model", help="model.name: cnn, resnet18, mobilenet_v3_small, ..."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="optim.name: adamw, adam, sgd, rmsprop"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="data.image_size"),
    patience: Optional[int] = typer.Option(None, "--patience", help="train.patience: epochs without improvement before stopping early; 0 = early stopping off"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed"),
    device: Optional[str] = typer.Option(None, "--device", help="train.device: auto, cpu, cuda, mps"),
    workers: Optional[int] = typer.Option(None, "--workers", help="data.workers"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="model.weights: local file with initial weights."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o from its last checkpoint."),
    list_keys: bool = typer.Option(False, "--list-keys", help="Print every config key, its default and meaning."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a classifier on a manifest; every config key is settable with --set."""
    import os

    from datakit import config as cfg
    from datakit import render_training
    from datakit.training import TrainingInterrupted, train as run_train

    if list_keys:
        render_training.config_keys(out, cfg.describe())
        return
    overrides: dict[str, Any] = dict(cfg.parse_assignment(item) for item in set_ or [])
    flags = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "model": model, "optimizer": optimizer,
             "image_size": image_size, "patience": patience, "seed": seed, "device": device, "workers": workers,
             "weights": str(weights) if weights else None}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if print_config:
        sys.stdout.write(cfg.dump_yaml(cfg.resolve_config(config, overrides)))
        return
    try:
        result = run_train(manifest, config, output, resume=resume, show_progress=not (quiet or as_json), **overrides)
    except TrainingInterrupted as exc:
        err.print(f"[bold yellow]interrupted:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun the first process reports
    if as_json:
        print_json(result.as_dict())
    else:
        render_training.train_summary(out, result)


@app.command("eval")
@handle_errors
def eval_(
    run: Path = typer.Argument(..., help="Run directory, checkpoint file, sweep folder (its best trial) or pipeline output (its last train/sweep step)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", "-m", help="Manifest to score (default: the run's)."),
    split: str = typer.Option("test", "--split", help="train, val, test or all."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Folder for the report (default RUN/eval-SPLIT)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Accuracy, precision/recall/F1, confusion matrix and mistakes of a trained run on a split."""
    from datakit import render_training
    from datakit.evaluation import evaluate

    metrics = evaluate(run, manifest, split, checkpoint=checkpoint, output=output, show_progress=not as_json)
    if as_json:
        print_json(metrics)
    else:
        render_training.eval_tables(out, metrics)


@app.command()
@handle_errors
def predict(
    run: Path = typer.Argument(..., help="Run directory, checkpoint file, sweep folder (its best trial) or pipeline output (its last train/sweep step)."),
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the predictions to this CSV file."),
    all_probs: bool = typer.Option(False, "--all-probs", help="Add one probability column per class."),
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Class and probability for each image."""
    from datakit import render_training
    from datakit.prediction import predict as run_predict

    table = run_predict(run, images, checkpoint=checkpoint, all_probabilities=all_probs, show_progress=not as_json)
    if table.attrs.get("run_source"):  # a sweep or pipeline folder: say which run (stderr keeps --json clean)
        err.print(f"using {table.attrs['run_source']}", highlight=False, soft_wrap=True)
    if csv is not None:
        table.to_csv(csv, index=False)
    if as_json:
        print_json(json.loads(table.to_json(orient="records")))
    else:
        render_training.predictions_table(out, table)
        if csv is not None:
            out.print(f"wrote {csv}", highlight=False)


_IMAGES_HELP = "How images reach the output: copy, symlink or none (annotations only)."


@app.command()
@handle_errors
def export(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    format: str = typer.Option(..., "--format", "-f", help="coco, voc, yolo, labelme, imagefolder or masks."),
    output: Path = typer.Option(..., "-o", "--output", help="New folder to write into."),
    images: str = typer.Option("copy", "--images", help=_IMAGES_HELP),
    include_broken: bool = typer.Option(False, "--include-broken", help="Also export images whose status is not ok."),
    crop_objects: bool = typer.Option(False, "--crop-objects", help="imagefolder: one image per object (its box), filed by category."),
    crop_padding: float = typer.Option(0.0, "--crop-padding", help="--crop-objects: extra margin, as a fraction of the box size."),
    yolo_task: str = typer.Option("detect", "--yolo-task", help="yolo: detect (boxes) or segment (polygons)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write a manifest as an annotation format (COCO, VOC, YOLO, LabelMe, ImageFolder, masks)."""
    from datakit.convert import export as run_export

    result = run_export(manifest, format, output, images=images, include_broken=include_broken,
                        crop_objects=crop_objects, crop_padding=crop_padding, yolo_task=yolo_task)
    if as_json:
        print_json(result.as_dict())
    else:
        render.export_summary(out, result)


@app.command()
@handle_errors
def convert(
    src: Path = typer.Argument(..., help="Annotated data set (folder, or a COCO JSON file)."),
    to: str = typer.Option(..., "--to", help="coco, voc, yolo, labelme, imagefolder or masks."),
    output: Path = typer.Option(..., "-o", "--output", help="New folder to write into."),
    format: Optional[str] = typer.Option(None, "--format", help="Source format (default: detected)."),
    on_invalid: str = typer.Option("clip", "--on-invalid", help="clip (and report), skip or fail."),
    images: str = typer.Option("copy", "--images", help=_IMAGES_HELP),
    include_broken: bool = typer.Option(False, "--include-broken", help="Also export images whose status is not ok."),
    crop_objects: bool = typer.Option(False, "--crop-objects", help="imagefolder: one image per object (its box), filed by category."),
    crop_padding: float = typer.Option(0.0, "--crop-padding", help="--crop-objects: extra margin, as a fraction of the box size."),
    yolo_task: str = typer.Option("detect", "--yolo-task", help="yolo: detect (boxes) or segment (polygons)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Convert an annotated data set to another format in one step."""
    from datakit.convert import convert as run_convert

    result = run_convert(src, to, output, format=format, on_invalid=on_invalid, images=images,
                         include_broken=include_broken, crop_objects=crop_objects, crop_padding=crop_padding,
                         yolo_task=yolo_task, show_progress=not as_json)
    if as_json:
        print_json(result.as_dict())
    else:
        render.export_summary(out, result.written, result.read.report)


@app.command()
@handle_errors
def sweep(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    space: Path = typer.Option(..., "--space", "-s", help="Search space YAML: sampler, trials, metric, params (config keys)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Sweep directory (default sweeps/SPACE); run again to resume."),
    config: Optional[Path] = typer.Option(None, "-c", "--config", help="Base train config (replaces the space's `config`)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="KEY=VALUE set in every trial, e.g. train.epochs=10; repeatable."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Trials in total (replaces the space's `trials`)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="grid, random or tpe (replaces the space's `sampler`)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna database URL that several processes or machines share (default: SQLite in the sweep directory)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name in the storage (default: the sweep directory's name)."),
    top: int = typer.Option(10, "--top", help="Trials shown in the leaderboard."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Train one run per hyperparameter combination (grid, random or TPE) and rank them on validation."""
    from datakit import config as cfg
    from datakit.errors import CheckFailed
    from datakit.render_sweep import leaderboard
    from datakit.sweeping import SweepInterrupted, sweep as run_sweep

    overrides: dict[str, Any] = dict(cfg.parse_assignment(item) for item in set_ or [])
    try:
        result = run_sweep(manifest, space, output, storage=storage, study_name=study_name, trials=trials,
                           sampler=sampler, config=config, show_progress=not (quiet or as_json), **overrides)
    except SweepInterrupted as exc:
        err.print(f"[bold yellow]interrupted:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result.as_dict())
    else:
        leaderboard(out, result, top)
    if result.best is None:
        raise CheckFailed(f"no trial completed ({', '.join(f'{n} {s}' for s, n in result.counts.items())}); "
                          f"see {result.output}/results.csv")


@app.command("run")
@handle_errors
def run_(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML, e.g. pipelines/digits-cnn.yaml."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output folder (default runs/NAME)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="STEP.OPTION=VALUE, e.g. train.epochs=3 or sweep.trials=4; repeatable."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for every step that samples (replaces the pipeline's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output folder of an earlier run of a pipeline."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = typer.Option(False, "--json", help="Print the step results as JSON instead of tables."),
) -> None:
    """Run a pipeline: sample, ingest, info, split, train, eval and sweep steps in order."""
    from datakit import config as cfg
    from datakit.pipeline import run_pipeline

    overrides: dict[str, Any] = dict(cfg.parse_assignment(item) for item in set_ or [])
    try:
        result = run_pipeline(pipeline, output, overrides=overrides, seed=seed, overwrite=overwrite,
                              show_progress=not (quiet or as_json), console=None if as_json else out)
    except KeyboardInterrupt as exc:
        detail = getattr(exc, "message", "") or "the interrupted step's output may be incomplete"
        err.print(f"[bold yellow]interrupted:[/] pipeline stopped; {detail}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result.as_dict())
    else:
        from datakit.render import pipeline_done

        pipeline_done(out, result)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
