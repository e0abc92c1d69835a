"""`datakit predict`: the class and its probability for each image, from a trained run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd  # noqa: F401 - the return type

from datakit.console import progress_bar
from datakit.errors import DatakitError
from datakit.inference import collect_images, load_run
from datakit.manifest_header import check_output_outside


def predict(
    run: str | os.PathLike[str],
    images: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    checkpoint: str = "best",
    batch_size: int = 256,
    all_probabilities: bool = False,
    show_progress: bool = False,
    csv: str | os.PathLike[str] | None = None,
    task: str | None = None,
    output: str | os.PathLike[str] | None = None,
    yolo: bool = False,
    draw: bool = False,
    min_score: float = 0.25,
    manifest: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """One row per image: ``path``, ``label`` (predicted class), ``probability``, ``error``.

    Folders are searched for images recursively. An image that cannot be decoded gets an empty
    label and its reason in ``error`` instead of stopping the others. ``all_probabilities`` adds
    one ``p_<class>`` column per class. ``csv`` names a file to write the table to; it may not be
    one of the inputs (checked before anything is read). ``run`` may be a sweep folder (its best
    trial) or a pipeline folder (its last train or sweep step); ``table.attrs["run_source"]`` then
    says which run.

    Box tasks (localization, detection) give one row per box: ``path``, ``label``, ``score``,
    ``x``, ``y``, ``w``, ``h`` (the image's own pixels), ``error``; ``output`` names a folder for
    ``predictions.json`` (COCO results), with ``yolo`` also ``labels/*.txt``, with ``draw``
    ``draw/*.png``. The table and the drawings keep boxes scoring at least ``min_score``; the COCO
    and YOLO files keep every box (mAP needs the low-scoring ones too). Each COCO result names its
    image by ``file_name`` and, for an image of ``manifest`` (default: the run's own manifest,
    when it can be read), by the integer ``image_id`` datakit's COCO export writes for it, so
    ``datakit eval --predictions OUT/predictions.json --manifest M`` scores it. ``task`` checks the
    run is of that task (a clear error otherwise).

    Semantic segmentation runs give one row per image: ``path``, ``classes`` (each predicted class
    with its share of the pixels), ``mask``, ``error``; ``output`` names a folder for ``masks/*.png``
    (category ids per pixel, the image's own size) and, with ``draw``, ``draw/*.png`` overlays.
    """
    if not 0.0 <= min_score <= 1.0:
        raise DatakitError(f"--min-score must be between 0 and 1, got {min_score}")
    if (yolo or draw) and output is None:
        raise DatakitError("--yolo and --draw write into the -o/--output folder; give -o OUT")
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    images = list(images)
    paths = collect_images(images)
    if csv is not None:
        check_csv_output(Path(csv), [Path(p) for p in images] + paths)
    if output is not None:  # masks and drawings written into an input folder would be predicted next time
        check_output_outside(output, {f"input folder {p}": p for p in images if Path(p).is_dir()}, "-o")
    loaded = load_run(run, checkpoint)
    if task is not None:
        from datakit.tasks import canonical_task

        wanted = canonical_task(task)
        if wanted != loaded.task.name:
            raise DatakitError(f"{run}: is a {loaded.task.name} run; it cannot predict task {wanted} "
                               f"(train a {wanted} model: datakit train MANIFEST --set task={wanted})")
    if hasattr(loaded.task, "segment"):  # semantic segmentation: a class map per image (mask PNGs with -o)
        from datakit.tasks import segrun

        if yolo:
            raise DatakitError(f"{run}: --yolo writes boxes; this is a {loaded.task.name} run (-o writes mask PNGs)")
        table = segrun.predict_files(loaded, paths, _names(images, paths), output, draw, batch_size, show_progress)
        table.attrs["run_source"] = loaded.source
        if csv is not None:
            table.to_csv(csv, index=False)
        return table
    if hasattr(loaded.task, "detections"):  # a box task: one row per detection, in the image's own pixels
        from datakit.tasks import boxrun

        sizes: list = []
        with progress_bar("Predicting", len(paths), show_progress) as advance:
            found, errors = boxrun.detect_files(loaded, paths, min(batch_size, 64), on_image=advance, sizes=sizes)
        shown = [boxrun.above(f, min_score) for f in found]
        table = boxrun.rows([str(p) for p in paths], shown, errors, loaded.classes)
        table.attrs["run_source"] = loaded.source
        if csv is not None:
            table.to_csv(csv, index=False)
        if output is not None:
            names = _names(images, paths)
            ids = boxrun.export_category_ids(loaded.classes, loaded.info.get("category_ids"))
            boxrun.write_outputs(Path(output), names, paths, found, sizes, loaded.classes, ids, yolo=yolo, draw=draw,
                                 image_ids=_image_ids(manifest, loaded, paths), min_score=min_score)
        return table
    if output is not None or yolo or draw:
        raise DatakitError(f"{run}: -o/--yolo/--draw write boxes; this is a {loaded.task.name} run (use --csv)")
    pre = loaded.preprocess
    decoded = np.zeros((len(paths), pre.height, pre.width, pre.channels), dtype=np.uint8)
    errors: list[str | None] = [None] * len(paths)
    with progress_bar("Predicting", len(paths), show_progress) as advance:
        for i, path in enumerate(paths):
            try:
                decoded[i] = pre.load(path)
            except DatakitError as exc:
                errors[i] = str(exc)
            advance()
    good = [i for i, e in enumerate(errors) if e is None]
    outputs = np.full((len(paths), len(loaded.classes)), np.nan, dtype=np.float64)
    if good:
        outputs[good] = loaded.probabilities(decoded[good], batch_size)
    table = loaded.task.to_rows([str(p) for p in paths], outputs, errors, loaded.classes, all_probabilities)
    table.attrs["run_source"] = loaded.source  # which run a sweep or pipeline folder led to
    if csv is not None:
        table.to_csv(csv, index=False)
    return table


def failed_images(table: pd.DataFrame) -> tuple[int, int]:
    """(images that could not be predicted, images) of a predict table: a box task's table has a
    row per box, so rows are not images."""
    failed = table.loc[table["error"].notna(), "path"]
    return int(failed.nunique()), int(table["path"].nunique())


def check_csv_output(csv: Path, inputs: list[Path]) -> None:
    """Refuse a --csv that would overwrite an input image (or is named like one)."""
    from datakit.imageinfo import IMAGE_EXTENSIONS

    target = csv.resolve()
    if any(target == p.resolve() for p in inputs):
        raise DatakitError(f"--csv {csv}: is one of the input images; writing the table there would destroy it")
    if csv.is_dir():
        raise DatakitError(f"--csv {csv}: is a folder; name a .csv file")
    if csv.suffix.lower() in IMAGE_EXTENSIONS:
        raise DatakitError(f"--csv {csv}: has an image extension; name a .csv file")


def _names(inputs: list, paths: list[Path]) -> list[str]:
    """Each image's name in the results: its path under the one folder given, else the path as given."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        root = Path(inputs[0])
        return [p.relative_to(root).as_posix() for p in paths]
    return [p.as_posix() for p in paths]


def _image_ids(manifest: str | os.PathLike[str] | None, loaded: object, paths: list[Path]) -> list[int | None] | None:
    """COCO image ids from ``manifest`` (given: errors are the user's to see) or the run's own
    manifest (recorded: used only when it still loads; else results name images by file name)."""
    from datakit.manifest import load_manifest
    from datakit.tasks.boxrun import manifest_image_ids

    if manifest is not None:
        return manifest_image_ids(load_manifest(manifest), paths)
    recorded = getattr(loaded, "info", {}).get("manifest")
    if not recorded:
        return None
    try:
        return manifest_image_ids(load_manifest(recorded), paths)
    except DatakitError:
        return None
