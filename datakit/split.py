"""Deterministic stratified train/val/test splits, duplicate-aware.

Images with the same content hash always land in the same split, so an exact duplicate can never
leak from train into test; an augmented image (``parent_id``) always lands with its parent. Each
class is split on its own (stratified) with a random order that depends only on the seed and the
class name, so adding a class does not reshuffle the others.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from datakit.errors import DatakitError
from datakit.manifest import SPLITS


def _allocate(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(val, test) counts for a class of n groups; at least one group always stays in train."""
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    # small classes would otherwise get no val/test image at all and vanish from those metrics
    if n >= 3:
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        n_test = max(n_test, 1) if test_fraction > 0 else 0
    while n_val + n_test > n - 1 and (n_val or n_test):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def stratified_split(
    images: pd.DataFrame,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> pd.Series:
    """A split name per row of ``images`` (needs ``id`` and ``label``; uses ``sha256`` if present).

    Returns a Series aligned with ``images.index`` holding "train", "val" or "test".
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatakitError(f"split fractions must be in [0, 1) and leave room for train, got val {val_fraction}, "
                           f"test {test_fraction}")
    frame = images[["id", "label"]].copy()
    group = images["sha256"] if "sha256" in images.columns else pd.Series(pd.NA, index=images.index)
    frame["group"] = group.fillna(images["id"]).astype(str)
    if "parent_id" in images.columns and images["parent_id"].notna().any():
        # an augmented image goes where its parent goes: a copy in test of a train image is a leak
        own = dict(zip(images["id"].astype(str), frame["group"]))
        derived = images["parent_id"].notna()
        frame.loc[derived, "group"] = images.loc[derived, "parent_id"].astype(str).map(lambda p: own.get(p, p))
    # a duplicated image takes the label of its first row (sorted by id) for stratification
    first = frame.sort_values("id").drop_duplicates("group").set_index("group")["label"]
    result = pd.Series("train", index=images.index, dtype="string")
    group_split: dict[str, str] = {}
    for label in sorted(first.astype(str).unique()):
        groups = sorted(first.index[first.astype(str) == label])
        rng = np.random.default_rng([seed, zlib.crc32(label.encode("utf-8"))])
        order = [groups[i] for i in rng.permutation(len(groups))]
        n_val, n_test = _allocate(len(order), val_fraction, test_fraction)
        for g in order[:n_test]:
            group_split[g] = "test"
        for g in order[n_test:n_test + n_val]:
            group_split[g] = "val"
    result[:] = frame["group"].map(lambda g: group_split.get(g, "train")).to_numpy()
    return result


@dataclass
class SplitPlan:
    """Which split every usable image is in, where that came from, and what to tell the user."""

    splits: pd.Series  # aligned with the images passed in; null for images not used
    source: str  # "manifest", "generated" or "manifest+val"
    message: str | None


def plan_splits(images: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> SplitPlan:
    """Training splits for labelled images: the manifest's own, completed or generated.

    - no split anywhere: a stratified split by seed (train/val/test);
    - splits given but no val: val is carved out of train (``val_fraction`` of each class);
    - images with no split while others have one are not used, and the message says how many.
    """
    given = images["split"]
    if given.isna().all():
        splits = stratified_split(images, val_fraction, test_fraction, seed)
        counts = splits.value_counts()
        message = (
            f"the manifest has no splits: made a stratified split with seed {seed} "
            f"(val {val_fraction:g}, test {test_fraction:g} of each class): "
            + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS)
        )
        return SplitPlan(splits, "generated", message)
    splits = given.copy().astype("string")
    notes = []
    unassigned = int(given.isna().sum())
    if unassigned:
        notes.append(f"{unassigned} images have no split and are not used")
    if not (splits == "val").any():
        train_rows = images[splits == "train"]
        if len(train_rows):
            carved = stratified_split(train_rows, val_fraction, 0.0, seed)
            splits.loc[carved.index] = carved
            notes.append(f"the manifest has no 'val' split: took {int((carved == 'val').sum())} of "
                         f"{len(train_rows)} train images for validation (stratified, seed {seed})")
            return SplitPlan(splits, "manifest+val", "; ".join(notes))
    return SplitPlan(splits, "manifest", "; ".join(notes) or None)
