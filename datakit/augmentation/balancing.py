"""Rebalancing: how many derived images of which parents bring every class up to a target.

- Classification counts images per label. Each class below the target gets exactly
  ``target - count`` derived images, its sources taken round-robin (sorted by id), so the result
  has exactly the target count.
- Object tasks count objects per category. An image holds several classes and a transform may
  drop objects, so counts cannot be hit exactly: planning goes in rounds. Each round picks,
  for the class furthest below the target first, its source images round-robin until the
  projected count (assuming every object survives) reaches the target; the round is rendered,
  the objects actually kept are counted, and the next round makes up what was lost. Every class
  ends at or above the target (or the shortfall is reported, e.g. a class with no source image);
  the overshoot is reported.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from datakit.errors import DatakitError
from datakit.manifest import Manifest

# an image row: a pandas Series or a records dict (both read as row["column"])
Row = Any

MAX_ROUNDS = 8


def image_counts(sources: pd.DataFrame, manifest: Manifest, require: bool = True) -> dict[str, int]:
    if sources["label"].isna().all():
        if not require:
            return {}
        raise DatakitError("balancing by image needs labels (a classification manifest); this one has none")
    counts = {name: 0 for name in manifest.category_names}
    for label, n in sources["label"].dropna().astype(str).value_counts().items():
        counts[str(label)] = int(n)
    return counts


def object_counts(sources: pd.DataFrame, manifest: Manifest, require: bool = True) -> dict[str, int]:
    ann = manifest.annotations
    ann = ann[ann["image_id"].isin(set(sources["id"].tolist())) & ann["bbox_w"].notna()]
    if ann.empty:
        if not require:
            return {}
        raise DatakitError("balancing by object needs annotations with boxes in the augmented split; found none")
    counts = {name: 0 for name in manifest.category_names}
    for name, n in ann["category"].astype(str).value_counts().items():
        counts[str(name)] = int(n)
    return counts


def plan_images(sources: pd.DataFrame, counts: dict[str, int], goal: int, planner: Any) -> list[tuple[Row, int]]:
    plan = []
    for label in sorted(counts):
        need = goal - counts[label]
        rows = sources[sources["label"] == label].to_dict("records")
        if need <= 0 or not rows:
            continue
        for i in range(need):
            row = rows[i % len(rows)]
            plan.append((row, planner.take(str(row["id"]))))
    return plan


def plan_objects(sources: pd.DataFrame, objects: dict[str, pd.DataFrame], counts: dict[str, int], goal: int,
                 planner: Any, manifest: Manifest) -> list[tuple[Row, int]]:
    """One round: images to augment so every class's projected object count reaches ``goal``."""
    holders: dict[str, list[pd.Series]] = {}
    per_image: dict[str, dict[str, int]] = {}
    for row in sources.to_dict("records"):
        group = objects.get(str(row["id"]))
        if group is None:
            continue
        group = group[group["bbox_w"].notna()]
        tally = group["category"].astype(str).value_counts().to_dict()
        per_image[str(row["id"])] = {str(k): int(v) for k, v in tally.items()}
        for name in tally:
            holders.setdefault(str(name), []).append(row)
    pointers: dict[str, int] = planner.__dict__.setdefault("pointers", {})
    projected = dict(counts)
    plan = []
    order = sorted((name for name in counts if counts[name] < goal and holders.get(name)),
                   key=lambda name: (counts[name] - goal, name))
    for name in order:
        rows = holders[name]
        while projected[name] < goal:
            row = rows[pointers.get(name, 0) % len(rows)]
            pointers[name] = pointers.get(name, 0) + 1
            plan.append((row, planner.take(str(row["id"]))))
            for other, n in per_image[str(row["id"])].items():
                projected[other] = projected.get(other, 0) + n
    return plan


def kept_counts(results: list[dict[str, Any]], manifest: Manifest) -> dict[str, int]:
    names = {int(c["id"]): c["name"] for c in manifest.categories}
    counts: dict[str, int] = {}
    for done in results:
        for label in done["labels"]:
            name = names[int(label)]
            counts[name] = counts.get(name, 0) + 1
    return counts


def object_notes(after: dict[str, int], goal: int) -> list[str]:
    short = {k: goal - v for k, v in after.items() if v < goal}
    if not short:
        return []
    return [f"class '{k}' is {n} objects short of {goal} after {MAX_ROUNDS} rounds (no source image holds it, or the "
            "pipeline keeps dropping it)" for k, n in sorted(short.items())]
