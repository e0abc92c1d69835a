"""Deterministic, stratified, group-aware train/val/test splits: ``datakit split`` and ``datakit.split``.

Two entry points:

- ``split(manifest, output, ratios, seed, group_by)``: the command. Writes a manifest's ``split``
  column. Groups never straddle splits: identical images (same ``sha256``), images derived from
  one another (``parent_id``), rows with the same user ``group`` value, and whatever the
  ``group_by`` hooks join (the data-quality report adds near-duplicate clusters this way).
  Stratified by class (the image label, or for object manifests the image's most frequent object
  category) and, where there are objects, by the object counts of every category too (groups are
  placed one at a time, in a seeded order, where their class and their objects are most short of
  the ratios; then, where a split's total is still off, whole new groups move until the totals
  follow the ratios too), deterministic by seed, and stable: images that already have a split
  keep it, new images fill each class's shortfall towards the ratios, and an image moves only when keeping it
  would leave its group straddling splits (the fewest move, and each move is reported).
- ``stratified_split`` / ``plan_splits``: what training uses for a manifest without splits
  (unchanged: each class is split on its own with an order that depends only on the seed and
  the class name, so adding a class does not reshuffle the others).
"""

from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

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


# ---------------------------------------------------------------------------------------------
# `datakit split`

GroupHook = Callable[[pd.DataFrame], pd.Series]
GroupBy = Union[str, GroupHook, Sequence[Union[str, GroupHook]], None]
DEFAULT_RATIOS = (0.7, 0.15, 0.15)
NO_CLASS = "(no class)"
# how much the object categories count next to the image classes when a group's split is chosen
OBJECT_WEIGHT = 0.5
# manifest.extra key: the ratios and seed of the last `datakit split`, to tell a re-run with others
# that the images which kept their split did not follow them
SPLIT_RECORD = "split"
# a split's total may be this far (a share of the images) from its ratio before groups are moved
# to fix it: the greedy's few images of rounding on a large set (digits: 268 test images for 269.55)
# stand, and with them the splits the benchmarks in docs/training.md were measured on
TOTAL_SLACK = 0.005


@dataclass
class SplitResult:
    manifest: Path
    ratios: dict[str, float]
    seed: int
    counts: dict[str, int]  # split -> images
    by_class: dict[str, dict[str, int]]  # class -> split -> images
    worst_deviation_pp: float  # the largest |share - ratio| over classes and splits, in percentage points
    worst: tuple[str, str] | None  # (class, split) of that deviation
    kept: int  # images whose existing split was kept
    assigned: int  # images that had no split and got one
    moves: list[dict[str, str]] = field(default_factory=list)  # id, from, to, reason
    groups: int = 0
    grouped_images: int = 0  # images in a group of two or more
    unused: int = 0  # rows not split (status not ok)
    in_place: bool = False
    objects_by_class: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> split -> objects
    empty: list[str] = field(default_factory=list)  # splits given a ratio that got no image (too few images)
    discarded: int = 0  # existing assignments dropped by reset=True
    note: str | None = None  # why the ratios or seed asked for did not change the kept assignments

    def shares(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, row in self.by_class.items():
            total = sum(row.values())
            out[name] = {s: (row.get(s, 0) / total if total else 0.0) for s in SPLITS}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest), "in_place": self.in_place, "ratios": self.ratios, "seed": self.seed,
            "counts": self.counts, "by_class": self.by_class, "shares": self.shares(),
            "worst_deviation_pp": round(self.worst_deviation_pp, 3),
            "worst": list(self.worst) if self.worst else None, "kept": self.kept, "assigned": self.assigned,
            "moves": self.moves, "groups": self.groups, "grouped_images": self.grouped_images, "unused": self.unused,
            "objects_by_class": self.objects_by_class, "empty": self.empty, "discarded": self.discarded,
            "note": self.note,
        }


def parse_ratios(ratios: str | Sequence[float] | None) -> dict[str, float]:
    """train,val[,test] fractions that sum to 1 (``"0.7,0.15,0.15"`` or a sequence)."""
    if ratios is None:
        ratios = DEFAULT_RATIOS
    if isinstance(ratios, str):
        try:
            ratios = [float(v) for v in ratios.split(",")]
        except ValueError:
            raise DatakitError(f"--ratios must be numbers like 0.7,0.15,0.15, got {ratios!r}") from None
    values = [float(v) for v in ratios]
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3:
        raise DatakitError(f"ratios need train,val[,test] (two or three numbers), got {len(values)}")
    if not all(math.isfinite(v) for v in values):  # NaN passes every comparison below
        raise DatakitError(f"ratios must be finite numbers, got {','.join(f'{v:g}' for v in values)}")
    if any(v < 0 for v in values) or values[0] <= 0:
        raise DatakitError(f"ratios must be >= 0 with train > 0, got {','.join(f'{v:g}' for v in values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise DatakitError(f"ratios must sum to 1, got {','.join(f'{v:g}' for v in values)} (sum {sum(values):g})")
    return dict(zip(SPLITS, values))


class _Groups:
    """Union-find over row positions."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def join_equal(self, keys: pd.Series) -> None:
        """Rows with the same non-null key end up in one group."""
        valid = keys.notna().to_numpy()
        if not valid.any():
            return
        positions = np.flatnonzero(valid)
        first: dict[Any, int] = {}
        for pos, key in zip(positions, keys.to_numpy()[valid]):
            key = str(key)
            if key in first:
                self.union(first[key], int(pos))
            else:
                first[key] = int(pos)


def _hooks(images: pd.DataFrame, group_by: GroupBy) -> list[GroupHook]:
    """Default grouping (sha256, parent_id, a user ``group`` column) plus the given hooks."""
    if group_by is None:
        extra: list[Any] = []
    elif isinstance(group_by, (str, bytes)) or callable(group_by):
        extra = [group_by]
    else:
        extra = list(group_by)
    hooks: list[GroupHook] = [lambda f: f["sha256"] if "sha256" in f.columns else pd.Series(pd.NA, index=f.index)]
    if "group" in images.columns:
        hooks.append(lambda f: f["group"])
    for item in extra:
        if isinstance(item, str):
            if item not in images.columns:
                raise DatakitError(f"group_by: the manifest's images have no column {item!r} "
                                   f"(columns: {', '.join(map(str, images.columns))})")
            hooks.append(lambda f, c=item: f[c])
        elif callable(item):
            hooks.append(item)
        else:
            raise DatakitError(f"group_by entries must be column names or functions, got {item!r}")
    return hooks


def _named_group_sources(group_by: GroupBy, manifest: Any, allow_outside: bool | None) -> GroupBy:
    """``"near-duplicates"`` becomes the duplicate-cluster hook of datakit/report/groups.py."""
    from datakit.report.groups import NAME, near_duplicate_groups

    items = [group_by] if isinstance(group_by, (str, bytes)) or callable(group_by) else list(group_by or [])
    if NAME not in items:
        return group_by
    return [near_duplicate_groups(manifest, allow_outside=allow_outside) if item == NAME else item for item in items]


def _strata(manifest: Any, images: pd.DataFrame) -> pd.Series:
    """The class each image is stratified by: its label, else its most frequent object category."""
    strata = images["label"].astype("string") if "label" in images.columns else pd.Series(pd.NA, index=images.index)
    annotations = manifest.annotations
    if strata.isna().any() and len(annotations):
        counts = annotations.groupby(["image_id", "category"]).size().reset_index(name="n")
        # most objects first, then the category name: deterministic
        counts = counts.sort_values(["image_id", "n", "category"], ascending=[True, False, True], kind="stable")
        dominant = counts.drop_duplicates("image_id").set_index("image_id")["category"].astype("string")
        strata = strata.fillna(images["id"].astype(str).map(dominant))
    return strata.fillna(NO_CLASS).astype(str)


def _object_counts(manifest: Any, images: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
    """Objects per image row and category (rows x categories), or None for a manifest without objects."""
    annotations = manifest.annotations
    if not len(annotations):
        return None, []
    table = pd.crosstab(annotations["image_id"].astype(str), annotations["category"].astype(str))
    table = table.reindex(images["id"].astype(str)).fillna(0)
    return table.to_numpy(dtype=np.int64), [str(c) for c in table.columns]


def _rank(keys: list[str], seed: int, salt: str) -> dict[str, int]:
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode("utf-8"))])
    order = rng.permutation(len(keys))
    return {keys[i]: r for r, i in enumerate(order)}


def assign_splits(
    images: pd.DataFrame,
    strata: pd.Series,
    ratios: dict[str, float],
    seed: int,
    group_keys: list[pd.Series],
    objects: np.ndarray | None = None,
) -> tuple[pd.Series, list[dict[str, str]], int, int]:
    """(split per row, moves, number of groups, images in groups of two or more) for ``images``.

    Existing values of ``images["split"]`` are kept unless their group straddles splits; then the
    group goes to the split most of its images are in, and the others move. ``objects`` (rows x
    categories, object counts) makes new groups also fill each category's shortfall of objects.
    """
    n = len(images)
    ids = images["id"].astype(str).to_numpy()
    groups = _Groups(n)
    for keys in group_keys:
        groups.join_equal(pd.Series(keys.to_numpy()))
    id_position = {i: p for p, i in enumerate(ids)}
    if "parent_id" in images.columns:
        for pos, parent in enumerate(images["parent_id"].to_numpy()):
            if parent is not None and not pd.isna(parent) and str(parent) in id_position:
                groups.union(pos, id_position[str(parent)])
    root = np.array([groups.find(i) for i in range(n)])
    existing = images["split"].astype("string").to_numpy() if "split" in images.columns else np.full(n, None)
    existing = np.array([s if isinstance(s, str) and s in SPLITS else None for s in existing], dtype=object)
    result = existing.copy()
    members: dict[int, list[int]] = {}
    for pos, r in enumerate(root):
        members.setdefault(int(r), []).append(pos)
    moves: list[dict[str, str]] = []
    order = {s: i for i, s in enumerate(SPLITS)}
    new_groups: list[int] = []
    for r, rows in members.items():
        given = [existing[p] for p in rows if existing[p] is not None]
        if not given:
            new_groups.append(r)
            continue
        tally = pd.Series(given).value_counts()
        # the split most of the group is in; ties go to train, then val (test stays untouched longest)
        target = sorted(tally.index, key=lambda s: (-tally[s], order[s]))[0]
        for p in rows:
            if existing[p] is not None and existing[p] != target:
                moves.append({"id": ids[p], "from": existing[p], "to": target,
                              "reason": f"its group ({len(rows)} images: same content, lineage or group) is mostly in "
                                        f"{target}"})
            result[p] = target
    # new groups fill each class's shortfall towards the ratios, largest groups first
    strata_values = strata.to_numpy()
    total_by_class = pd.Series(strata_values).value_counts().to_dict()
    have: dict[str, dict[str, int]] = {c: {s: 0 for s in SPLITS} for c in total_by_class}
    for p in range(n):
        if result[p] is not None:
            have[strata_values[p]][result[p]] += 1
    # a group of mixed classes is stratified by its most frequent one (ties: the first name)
    group_class = {r: min(pd.Series(strata_values[members[r]]).value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[0]
                   for r in new_groups}
    object_total = object_have = None
    if objects is not None and objects.shape[1]:
        object_total = objects.sum(0).astype(float)
        object_have = {s: objects[result == s].sum(0).astype(float) for s in SPLITS}
    have_total = {c: sum(v.values()) for c, v in have.items()}
    # one seeded order over every new group, largest first: classes and object categories fill
    # their shares side by side rather than one class after the other
    ranks = _rank(sorted(ids[r] for r in new_groups), seed, "groups")
    for r in sorted(new_groups, key=lambda r: (-len(members[r]), ranks[ids[r]])):
        c = group_class[r]
        size = len(members[r])
        counts = objects[members[r]].sum(0) if object_total is not None else None
        seen = have_total[c] + size

        def shortfall(s: str) -> float:
            """How far below its share split ``s`` is once it took the group (a fraction of the class so far)."""
            value = (ratios[s] * seen - have[c][s] - size / 2) / seen
            if counts is not None and counts.sum():
                # and of each object category in the group, weighted by its objects there
                placed = sum(object_have.values()) + counts
                short = (ratios[s] * placed - object_have[s] - counts / 2) / np.maximum(placed, 1)
                value += OBJECT_WEIGHT * float((short * counts).sum() / counts.sum())
            return value

        # the split furthest below its share; ties in train, val, test order
        best = max((s for s in SPLITS if ratios[s] > 0), key=lambda s: (shortfall(s), -order[s]))
        for p in members[r]:
            result[p] = best
            have[strata_values[p]][best] += 1
            have_total[strata_values[p]] += 1
        if counts is not None:
            object_have[best] = object_have[best] + counts
    _even_out_totals(result, members, new_groups, group_class, strata_values, ratios, ranks, ids)
    grouped = sum(len(rows) for rows in members.values() if len(rows) > 1)
    return pd.Series(result, index=images.index, dtype="string"), moves, len(members), grouped


def _largest_remainder(exact: dict[str, float], n: int) -> dict[str, int]:
    """Whole counts summing to ``n``, each the floor or ceiling of ``exact`` (the largest fractions
    round up; ties in train, val, test order)."""
    counts = {s: math.floor(v + 1e-9) for s, v in exact.items()}
    by_fraction = sorted((s for s in exact if exact[s] > 0), key=lambda s: -(exact[s] - counts[s]))
    for s in by_fraction[:max(0, n - sum(counts.values()))]:
        counts[s] += 1
    return counts


def _even_out_totals(result: np.ndarray, members: dict[int, list[int]], new_groups: list[int],
                     group_class: dict[int, str], strata_values: np.ndarray, ratios: dict[str, float],
                     ranks: dict[str, int], ids: np.ndarray) -> None:
    """Move new groups between splits until each split's total is its share of the whole set, rounded.

    The greedy rounds each class on its own and always the same way (ties go to val), so on small
    data every class's leftover ended in val and test stayed empty (30 digits: 20/10/0 for
    0.7/0.15/0.15). Where the totals already round to the ratios, as on a large balanced set, nothing
    moves. Otherwise the groups that move are those of the classes whose shares suffer least, whole
    groups only; images that had a split before are never moved.
    """
    n = len(result)
    exact = {s: ratios[s] * n for s in SPLITS}
    totals = {s: int((result == s).sum()) for s in SPLITS}
    off = {s: abs(totals[s] - exact[s]) for s in SPLITS}
    if all(off[s] < 1 - 1e-9 or off[s] <= TOTAL_SLACK * n + 1e-9 for s in SPLITS):
        return
    target = _largest_remainder(exact, n)
    have: dict[str, dict[str, int]] = {}
    for p in range(n):
        have.setdefault(strata_values[p], {s: 0 for s in SPLITS})[result[p]] += 1
    size = {c: sum(row.values()) for c, row in have.items()}
    # movable groups by (class, split), smallest first, then in the seeded order
    pool: dict[tuple[str, str], list[int]] = {}
    for r in sorted(new_groups, key=lambda r: (len(members[r]), ranks[ids[r]])):
        pool.setdefault((group_class[r], result[r]), []).append(r)

    def cost(rows: list[int], source: str, dest: str) -> float:
        """How much further from the ratios the classes' shares get (squared) when ``rows`` move."""
        change = 0.0
        for c, k in Counter(strata_values[rows].tolist()).items():
            row, q = have[c], {s: ratios[s] * size[c] for s in SPLITS}
            before = (row[source] - q[source]) ** 2 + (row[dest] - q[dest]) ** 2
            after = (row[source] - k - q[source]) ** 2 + (row[dest] + k - q[dest]) ** 2
            change += (after - before) / size[c] ** 2
        return change

    while True:
        short = [s for s in SPLITS if totals[s] < target[s]]
        over = [s for s in SPLITS if totals[s] > target[s]]
        best: tuple[float, int, int, str, str] | None = None
        for (c, source), groups in pool.items():
            if source not in over:
                continue
            for dest in short:
                room = min(totals[source] - target[source], target[dest] - totals[dest])
                r = next((g for g in groups if len(members[g]) <= room), None)
                if r is None:
                    continue
                key = (cost(members[r], source, dest), ranks[ids[r]], r, source, dest)
                if best is None or key[:2] < best[:2]:
                    best = key
        if best is None:
            return
        _, _, r, source, dest = best
        pool[(group_class[r], source)].remove(r)
        for p in members[r]:
            result[p] = dest
            have[strata_values[p]][source] -= 1
            have[strata_values[p]][dest] += 1
        totals[source] -= len(members[r])
        totals[dest] += len(members[r])


def _kept_note(previous: Any, wanted: dict[str, float], seed: int, kept: pd.Series) -> str | None:
    """A line for a re-run whose ratios or seed differ from the kept assignments' (None: they agree).

    ``previous``: the manifest's record of the last split (absent for a manifest split another way:
    then the kept images' shares are compared with the ratios, within the 2 points a split allows).
    """
    if kept.empty:
        return None
    if isinstance(previous, dict) and isinstance(previous.get("ratios"), list):
        same_ratios = len(previous["ratios"]) == len(SPLITS) and all(
            isinstance(r, (int, float)) and abs(r - wanted[s]) < 1e-9 for r, s in zip(previous["ratios"], SPLITS))
        if same_ratios and previous.get("seed") == seed:
            return None
        made = f"made with ratios {','.join(f'{r:g}' for r in previous['ratios'])}, seed {previous.get('seed')}"
    else:
        shares = kept.value_counts(normalize=True)
        if all(abs(float(shares.get(s, 0.0)) - wanted[s]) <= 0.02 for s in SPLITS):
            return None
        made = "shares " + ", ".join(f"{s} {float(shares.get(s, 0.0)) * 100:.0f}%" for s in SPLITS)
    return (f"{len(kept)} images kept the split they already had ({made}); the ratios and seed given apply "
            "only to images without one: pass --reset to split every image afresh")


def _table_format(location: Path) -> str:
    import json

    try:
        tables = json.loads((location / "manifest.json").read_text(encoding="utf-8")).get("tables") or {}
        suffix = Path(str(tables.get("images", "images.parquet"))).suffix.lstrip(".")
    except (OSError, ValueError):
        suffix = "parquet"
    return suffix if suffix in ("parquet", "csv", "jsonl") else "parquet"


def split(
    manifest: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    ratios: str | Sequence[float] | None = None,
    seed: int = 0,
    group_by: GroupBy = None,
    reset: bool = False,
    allow_outside: bool | None = None,
) -> SplitResult:
    """Give every usable image of ``manifest`` a train/val/test split; write it to ``output``.

    Without ``output`` the manifest is updated in place (atomically; only the split column
    changes). ``ratios`` is train,val[,test] (default 0.7,0.15,0.15). ``group_by`` adds groups
    that must not straddle splits: column names of the images table, or functions taking the
    images table and returning one group key per row (null: no group). ``reset`` discards every
    existing assignment and splits afresh (without it images keep their split, and a note says so
    when the ratios or seed differ from those they were split with). ``allow_outside`` as for
    every command that reads a manifest (an image root that leaves the data set is refused).
    """
    from datakit.manifest import check_image_root, load_manifest, resolve_location, save_manifest

    wanted = parse_ratios(ratios)
    m = load_manifest(manifest, allow_outside=allow_outside)
    source = Path(m.location) if m.location is not None else resolve_location(manifest)
    if output is not None and resolve_location(output).resolve() == source.resolve():
        output = None  # -o MANIFEST: the in-place split, said plainly
    if output is not None:
        target = resolve_location(output)
        # another manifest there would lose its images and objects to this one's
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise DatakitError(f"{output}: exists and is not an empty folder; choose a new output folder "
                               f"(without -o, {manifest} is split in place)")
    images = m.images
    usable_mask = (images["status"] == "ok").to_numpy()
    usable = images[usable_mask]
    if usable.empty:
        raise DatakitError(f"{source}: no usable image to split (every row's status is not 'ok')")
    strata = _strata(m, usable)
    group_by = _named_group_sources(group_by, manifest, allow_outside)
    keys = [hook(usable) for hook in _hooks(usable, group_by)]
    for i, k in enumerate(keys):
        if not isinstance(k, pd.Series) or len(k) != len(usable):
            raise DatakitError(f"group_by hook {i}: must return a Series with one key per image row")
    before = usable["split"].astype("string")
    discarded = int(before.isin(SPLITS).sum()) if reset else 0
    if reset:
        before = pd.Series(pd.NA, index=usable.index, dtype="string")
        usable = usable.assign(split=before)
    objects, object_names = _object_counts(m, usable)
    splits, moves, groups, grouped = assign_splits(usable, strata, wanted, seed, keys, objects)
    kept_mask = (before.notna() & (before == splits)).to_numpy()
    kept = int(kept_mask.sum())
    note = _kept_note(m.extra.get(SPLIT_RECORD), wanted, seed, before[kept_mask])
    if note is None:  # else the kept images still follow the recorded split, and the next run says so again
        m.extra = {**m.extra, SPLIT_RECORD: {"ratios": [wanted[s] for s in SPLITS], "seed": seed}}
    assigned = int(before.isna().sum())
    updated = images.copy()
    updated["split"] = updated["split"].astype("string")
    updated.loc[usable.index, "split"] = splits
    m.images = updated
    if output is None:
        out = save_manifest(m, source, table_format=_table_format(source))
    else:
        # the new manifest lives elsewhere and the images stay where they are: relative, as ingest writes it
        target = resolve_location(output)
        m.image_root = Path(os.path.relpath(m.root().resolve(), target.resolve())).as_posix()
        check_image_root(m.image_root, str(output), allow_outside)
        out = save_manifest(m, target, table_format=_table_format(source))
    by_class = {c: {s: int(((strata == c) & (splits == s)).sum()) for s in SPLITS} for c in sorted(strata.unique())}
    objects_by_class = {}
    if objects is not None:
        for k, name in enumerate(object_names):
            objects_by_class[name] = {s: int(objects[(splits == s).to_numpy(), k].sum()) for s in SPLITS}
    worst, worst_at = 0.0, None
    for c, row in by_class.items():
        total = sum(row.values())
        for s in SPLITS:
            deviation = abs(row[s] / total - wanted[s]) * 100
            if deviation > worst + 1e-12:
                worst, worst_at = deviation, (c, s)
    counts = {s: int((splits == s).sum()) for s in SPLITS}
    return SplitResult(
        manifest=Path(out), ratios=wanted, seed=seed, counts=counts, by_class=by_class, worst_deviation_pp=worst,
        worst=worst_at, kept=kept, assigned=assigned, moves=moves, groups=groups, grouped_images=grouped,
        unused=int((~usable_mask).sum()), in_place=output is None, objects_by_class=objects_by_class,
        empty=[s for s in SPLITS if wanted[s] > 0 and not counts[s]], discarded=discarded, note=note,
    )
