"""`datakit predict`: the class and its probability for each image, from a trained run."""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import pandas as pd

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
) -> pd.DataFrame:
    """One row per image: ``path``, ``label`` (predicted class), ``probability``, ``error``.

    Folders are searched for images recursively. An image that cannot be decoded gets an empty
    label and its reason in ``error`` instead of stopping the others. ``all_probabilities`` adds
    one ``p_<class>`` column per class. ``run`` may be a sweep folder (its best trial) or a pipeline
    folder (its last train or sweep step); ``table.attrs["run_source"]`` then says which run.
    """
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    loaded = load_run(run, checkpoint)
    paths = collect_images(images)
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
    probabilities = np.full((len(paths), len(loaded.classes)), np.nan, dtype=np.float64)
    if good:
        probabilities[good] = loaded.probabilities(decoded[good], batch_size)
    best = np.nan_to_num(probabilities, nan=-1.0).argmax(1)
    table = pd.DataFrame({
        "path": [str(p) for p in paths],
        "label": pd.array([loaded.classes[b] if e is None else None for b, e in zip(best, errors)], dtype="string"),
        "probability": [float(probabilities[i, b]) if e is None else float("nan")
                        for i, (b, e) in enumerate(zip(best, errors))],
        "error": pd.array(errors, dtype="string"),
    })
    if all_probabilities:
        for c, name in enumerate(loaded.classes):
            table[f"p_{name}"] = probabilities[:, c]
    table.attrs["run_source"] = loaded.source  # which run a sweep or pipeline folder led to
    return table
