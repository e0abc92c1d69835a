"""Image files in model-sized batches for ``predict`` and ``eval`` of the dense tasks: a file that
cannot be decoded gets its reason and leaves the others untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from datakit.errors import DatakitError


def batches_of_files(paths: Sequence[Path], batch_size: int, load: Callable[[Path], tuple],
                     errors: list[str | None],
                     on_image: Callable[[int], None] | None = None) -> Iterator[tuple[list[int], np.ndarray, list]]:
    """Yields (indices, stacked images, original sizes) per batch of the files that decode.

    ``load(path)`` returns a tuple whose first item is the model-sized image and whose last is the
    file's original (height, width); a ``DatakitError`` puts its message in ``errors[i]``.
    ``on_image`` hears how many files each batch covered, decoded or not."""
    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        images, sizes, good = [], [], []
        for i in chunk:
            try:
                loaded = load(paths[i])
            except DatakitError as exc:
                errors[i] = str(exc)
                continue
            images.append(loaded[0])
            sizes.append(loaded[-1])
            good.append(i)
        if good:
            yield good, np.stack(images), sizes
        if on_image is not None:
            on_image(len(chunk))
