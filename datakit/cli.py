"""The `datakit` command: thin Typer functions that parse options, call the library, render results.

No logic lives here. Errors the user can fix print one line and exit 2 (1 for a failed check);
Ctrl-C exits 130 and leaves what was written before intact.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Optional


def _interrupted_at_startup(signum: int, frame: Any) -> None:
    sys.stderr.write("interrupted: datakit was starting; nothing was done\n")
    os._exit(130)


# Ctrl-C while the command starts (imports, parsing) is one line, not a traceback. Only when run
# as the `datakit` command (or `python -m datakit`), never for a program that imports this module;
# each command's own handling (handle_errors) takes over when its body starts.
_ARGV0 = sys.argv[0] if sys.argv else ""
if (os.path.basename(_ARGV0) == "datakit" or _ARGV0.endswith(os.path.join("datakit", "__main__.py"))) and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with Ctrl-C ignored
    signal.signal(signal.SIGINT, _interrupted_at_startup)

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from datakit import render  # noqa: E402
from datakit.errors import DatakitError  # noqa: E402
from datakit.interrupts import sigterm_as_interrupt  # noqa: E402
from datakit.manifest_header import trusting_outside  # noqa: E402

app = typer.Typer(
    name="datakit",
    help="From a folder of images to a trained, evaluated model you can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from datakit import __version__

        out.print(f"datakit {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """From a folder of images to a trained, evaluated model you can trust."""


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if signal.getsignal(signal.SIGINT) is _interrupted_at_startup:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            # --allow-outside, for every manifest loaded; SIGTERM (kill, schedulers) cleans up as Ctrl-C does
            with trusting_outside(kwargs.get("allow_outside")), sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except DatakitError as exc:
            # escaped: a message such as "[height, width]" is text, not rich markup
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[bold yellow]interrupted:[/] nothing was written; the previous output is intact")
            raise typer.Exit(130) from None
        except OSError as exc:
            # a folder without write permission, a full disk, a name too long for the file system: the
            # user's to fix, so one line naming the file (a traceback was 57 lines of datakit's insides)
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[bold red]error:[/] {escape(where + (exc.strerror or str(exc)))}", highlight=False,
                      soft_wrap=True)
            raise typer.Exit(2) from None

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
    allow_outside: bool = typer.Option(False, "--allow-outside", help="Follow symlinks that resolve outside SRC; allow a manifest more than one folder away from its images."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Images with more pixels get status too_large (default: Pillow's limit, about 179 million)."),
    table_format: str = typer.Option("parquet", "--table-format", help="parquet, csv or jsonl."),
    format: Optional[str] = typer.Option(None, "--format", help="Annotation format: coco, voc, yolo, labelme, imagefolder, masks (default: detected)."),
    on_invalid: str = typer.Option("clip", "--on-invalid", help="Boxes outside the image or of zero size, bad objects: clip (and report), skip or fail."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Scan a folder of images, or read an annotation format, into a manifest."""
    from datakit.ingest import ingest as run_ingest

    result = run_ingest(
        src, output, labels=labels, layout=layout, workers=workers or None, verify=verify, strict=strict,
        incremental=incremental, allow_outside=allow_outside or None, table_format=table_format,
        show_progress=not as_json, format=format, on_invalid=on_invalid, max_pixels=max_pixels,
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
    count: Optional[int] = typer.Option(None, help="Number of images (shapes: 400; digits: all 1,797, fewer drawn per class in proportion)."),
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


_OUTSIDE_HELP = "Trust a manifest whose image root is absolute or more than one folder up (or set DATAKIT_ALLOW_OUTSIDE=1)."
# every command that loads a manifest takes it; handle_errors applies it to each manifest loaded
ALLOW_OUTSIDE = typer.Option(False, "--allow-outside", help=_OUTSIDE_HELP)


@app.command()
@handle_errors
def augment(
    manifest: Optional[Path] = typer.Argument(None, help="Manifest to augment."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="New folder for the augmented manifest and images."),
    preset: Optional[str] = typer.Option(None, "--preset", help="light, medium (default) or heavy; e.g. medium:fixed for digits."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Spec file (.yaml/.json): albumentations' A.save form or a list of transforms."),
    orientation: Optional[str] = typer.Option(None, "--orientation", help="What the preset may assume: upright (default), any or fixed."),
    task: Optional[str] = typer.Option(None, "--task", help="Task the preset is built for: instance, detect, segment or classify (default: from the manifest)."),
    copies: Optional[int] = typer.Option(None, "--copies", help="Derived images per source image (default 1, at most 1000)."),
    split: str = typer.Option("train", "--split", help="Split to augment: train, val, test or all; the others are carried unchanged."),
    balance: bool = typer.Option(False, "--balance", help="Augment classes below the largest class up to its count."),
    target: Optional[int] = typer.Option(None, "--target", help="Augment every class below N up to N (images, or objects for object tasks)."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same files whatever --workers is."),
    workers: int = typer.Option(1, help="Worker processes."),
    verify: Optional[Path] = typer.Option(None, "--verify", help="Regenerate every derived image of this augmented manifest and compare bytes."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Write a grid of originals and augmented versions with boxes and masks drawn."),
    list_presets: bool = typer.Option(False, "--list-presets", help="Show the presets and what they assume."),
    table_format: str = typer.Option("parquet", "--table-format", help="parquet, csv or jsonl."),
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Augment images into a new manifest with lineage (boxes and masks follow the pixels); --verify, --preview."""
    from datakit.augmentation import summary
    from datakit.augmentation.command import augment as run_augment

    if list_presets:
        if manifest is not None or output is not None or verify is not None or preview is not None:
            raise DatakitError("--list-presets lists the presets and augments nothing; run it without a manifest, "
                               "-o, --verify or --preview")
        if as_json:
            from datakit.augmentation.presets import catalogue

            print_json(catalogue())
        else:
            summary.presets_table(out)
        return
    result = run_augment(manifest, output, preset=preset, spec=spec, orientation=orientation, task=task,
                         copies=copies, split=split, balance=balance, target=target, seed=seed, workers=workers,
                         verify=verify, preview=preview, show_progress=not as_json, table_format=table_format)
    if as_json:
        print_json(result.as_dict())
    elif verify is not None:
        summary.verify_summary(out, result)
    elif output is not None:
        summary.augment_summary(out, result)
    else:
        summary.preview_summary(out, result)
    if verify is not None and not result.passed:
        raise typer.Exit(1)


@app.command()
@handle_errors
def info(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Counts per class, split, status and format of a manifest."""
    from datakit.info import info as run_info

    data = run_info(manifest, allow_outside=allow_outside or None)
    if as_json:
        print_json(data)
    else:
        render.info_tables(out, data)


@app.command("balance-report")
@handle_errors
def balance_report(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write one self-contained HTML page with plots."),
    fail_on: Optional[list[str]] = typer.Option(
        None, "--fail-on", help="Exit 1 when a check is crossed: imbalance>3, leakage>0, broken>0, conflicts>0, "
                                "shortcuts>0, duplicates>N; repeatable."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Read the pixels of at most N images (counts cover all)."),
    workers: int = typer.Option(0, help="Worker processes for pixel statistics (0 = all cores)."),
    seed: int = typer.Option(0, help="Seed for --sample and the shortcut classifier's folds."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse pixel statistics cached by content hash."),
    allow_outside: bool = ALLOW_OUTSIDE,
) -> None:
    """Is this data set good enough? Balance, variance, shortcuts, duplicates, leakage, boxes."""
    from datakit.errors import CheckFailed
    from datakit.report.runner import balance_report as run_report

    result = run_report(manifest, html=html, fail_on=fail_on, sample=sample, workers=workers or None, seed=seed,
                        cache=cache, show_progress=not as_json, allow_outside=allow_outside or None)
    if as_json:
        print_json(result.as_dict())
    else:
        result.render(out)
    if result.failed:
        raise CheckFailed(f"balance-report: {len(result.failed)} check(s) failed: " + "; ".join(result.failed))


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
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a model on a manifest (the task follows it); every config key is settable with --set.

    Tasks: classification, localization, detection, semantic and instance segmentation.

    Keys left unset are derived from the data (size, batch, steps, augmentation) and printed with why.
    """
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
        resolved = cfg.resolve_config(config, overrides)
        if manifest is not None:  # with a manifest: the values derived from its data, as training would
            from datakit.engine.defaults import derive_config
            from datakit.manifest import load_manifest
            from datakit.tasks import resolve_task

            loaded = load_manifest(manifest)
            task, reason = resolve_task(resolved.task, loaded)
            resolved, _ = derive_config(loaded, resolved, task)
            if resolved.task != task:  # the config keeps 'auto' (as RUN/config.yaml does); say what it becomes here
                sys.stdout.write(f"# task: {resolved.task} resolves to {task} on this manifest ({reason})\n")
        sys.stdout.write(cfg.dump_yaml(resolved))
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
    run: Optional[Path] = typer.Argument(None, help="Run directory, checkpoint file, sweep folder (its best trial) or pipeline output (its last train/sweep step); optional with --predictions."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", "-m", help="Manifest to score (default: the run's); with --predictions also a run folder: its manifest with the splits it trained on."),
    split: Optional[str] = typer.Option(None, "--split", help="train, val, test or all (default: test for a run, all with --predictions)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Folder for the report (default RUN/eval-SPLIT, or PREDICTIONS-eval/)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", "-p", help="Score this instead of a run: a COCO results JSON, a folder of YOLO .txt files or of mask PNGs."),
    task: Optional[str] = typer.Option(None, "--task", help="detection, instance, semantic or localization (default: from what the predictions hold)."),
    max_dets: Optional[str] = typer.Option(None, "--max-dets", help="Detections per image kept, comma-separated (default 1,10,100); every AP is read at the largest."),
    lenient: bool = typer.Option(False, "--lenient", help="Skip predictions that fail the input checks (reported) instead of stopping."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PR curves and confusion matrix PNGs (with --predictions)."),
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Score a trained run on a split, or a predictions file (--predictions) against a manifest."""
    if predictions is not None:
        from datakit.metrics import display
        from datakit.metrics.scoring import evaluate_predictions, parse_max_dets

        if run is not None:
            raise DatakitError("give either RUN or --predictions, not both")
        if manifest is None:
            raise DatakitError("--predictions needs --manifest: the ground truth to score against")
        result = evaluate_predictions(predictions, manifest, split=split, task=task, max_dets=parse_max_dets(max_dets),
                                      lenient=lenient, output=output, plots=plots, show_progress=not as_json)
        if as_json:
            print_json(result)
        else:
            display.show(out, result)
        return
    if run is None:
        raise DatakitError("give a RUN directory to evaluate, or --predictions FILE --manifest M")
    from datakit import render_training
    from datakit.evaluation import evaluate

    metrics = evaluate(run, manifest, split or "test", checkpoint=checkpoint, output=output, show_progress=not as_json)
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
    task: Optional[str] = typer.Option(None, "--task", help="Check the run is of this task (classify, localize, detect, segment, instance)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Box tasks: folder for predictions.json (COCO results; instance: with RLE masks); segment: masks/*.png (category ids)."),
    yolo: bool = typer.Option(False, "--yolo", help="With -o: also labels/*.txt in YOLO form (class cx cy w h score)."),
    draw: bool = typer.Option(False, "--draw", help="With -o: also draw/*.png, the images with their boxes (segment: classes painted; instance: mask outlines in colour)."),
    min_score: float = typer.Option(0.25, "--min-score", help="Box tasks: lowest score shown in the table, --csv and --draw (-o's JSON/YOLO files keep every box)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Box tasks: number images in predictions.json by this manifest's COCO ids (default: the run's manifest)."),
) -> None:
    """What a trained run sees in each image: class and probability; boxes, masks or class maps for the other tasks."""
    from datakit import render_training
    from datakit.prediction import failed_images, predict as run_predict

    from datakit.errors import CheckFailed

    table = run_predict(run, images, checkpoint=checkpoint, all_probabilities=all_probs, show_progress=not as_json,
                        csv=csv, task=task, output=output, yolo=yolo, draw=draw, min_score=min_score, manifest=manifest)
    if table.attrs.get("run_source"):  # a sweep or pipeline folder: say which run (stderr keeps --json clean)
        err.print(f"using {table.attrs['run_source']}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(json.loads(table.to_json(orient="records")))
    else:
        render_training.predictions_table(out, table)
        if csv is not None:
            out.print(f"wrote {csv}", highlight=False)
        if output is not None:
            out.print(f"wrote {output}/", highlight=False)
    failed, total = failed_images(table)
    if failed:  # the other predictions are printed and written; the exit code says some failed
        raise CheckFailed(f"{failed} of {total} image(s) could not be predicted (see the error column)")


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
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write a manifest as an annotation format (COCO, VOC, YOLO, LabelMe, ImageFolder, masks)."""
    from datakit.convert import export as run_export

    result = run_export(manifest, format, output, images=images, include_broken=include_broken,
                        crop_objects=crop_objects, crop_padding=crop_padding, yolo_task=yolo_task,
                        allow_outside=allow_outside or None)
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


@app.command("split")
@handle_errors
def split_(
    manifest: Path = typer.Argument(..., help="Manifest directory."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write a new manifest here (default: update MANIFEST in place, atomically)."),
    ratios: str = typer.Option("0.7,0.15,0.15", "--ratios", help="train,val[,test] fractions that sum to 1."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed and manifest give the same split."),
    group_by: Optional[list[str]] = typer.Option(None, "--group-by", help="Images-table column whose equal values must share a split (besides sha256, parent_id and a `group` column), or near-duplicates (clusters of near-duplicate images); repeatable."),
    reset: bool = typer.Option(False, "--reset", help="Discard every existing assignment and split afresh (by default images keep their split)."),
    allow_outside: bool = ALLOW_OUTSIDE,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Stratified, group-aware train/val/test split; existing assignments stay put."""
    from datakit.splitting import split as run_split

    result = run_split(manifest, output, ratios=ratios, seed=seed, group_by=group_by or None, reset=reset,
                       allow_outside=allow_outside or None)
    if as_json:
        print_json(result.as_dict())
    else:
        render.split_summary(out, result)


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
    allow_outside: bool = ALLOW_OUTSIDE,
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
    allow_outside: bool = ALLOW_OUTSIDE,
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
