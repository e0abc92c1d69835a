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


def predict(
    run: str | os.PathLike[str],
    images: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    checkpoint: str = "best",
    batch_size: int = 256,
    all_probabilities: bool = False,
    show_progress: bool = False,
    csv: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """One row per image: ``path``, ``label`` (predicted class), ``probability``, ``error``.

    Folders are searched for images recursively. An image that cannot be decoded gets an empty
    label and its reason in ``error`` instead of stopping the others. ``all_probabilities`` adds
    one ``p_<class>`` column per class. ``csv`` names a file to write the table to; it may not be
    one of the inputs (checked before anything is read). ``run`` may be a sweep folder (its best
    trial) or a pipeline folder (its last train or sweep step); ``table.attrs["run_source"]`` then
    says which run.
    """
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    images = list(images)
    paths = collect_images(images)
    if csv is not None:
        check_csv_output(Path(csv), [Path(p) for p in images] + paths)
    loaded = load_run(run, checkpoint)
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
