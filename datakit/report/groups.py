"""Near-duplicate clusters as a split group source: ``datakit split --group-by near-duplicates``.

``datakit.split(m, out, group_by=near_duplicate_groups(m))`` (or the name ``"near-duplicates"``)
keeps every cluster of exact and near duplicates (resized, re-encoded, cropped, brightness-shifted,
flipped, rotated copies) in one split, so a re-split of a leaky manifest reports leakage 0. The
pixel statistics come from the same cache as ``balance-report``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd

NAME = "near-duplicates"


def near_duplicate_groups(manifest: str | os.PathLike[str], workers: int | None = None,
                          allow_outside: bool | None = None,
                          show_progress: bool = False) -> Callable[[pd.DataFrame], pd.Series]:
    """A ``group_by`` hook: one key per image in a duplicate cluster, null for images with no copy."""
    from datakit.manifest import load_manifest
    from datakit.report.base import ReportContext

    m = load_manifest(manifest, allow_outside=allow_outside)
    ctx = ReportContext(m, Path(manifest), workers=workers, show_progress=show_progress)
    found = ctx.duplicates()
    sizes = found.sizes[found.cluster]
    keys = pd.Series([f"near-dup-{c}" if n > 1 else pd.NA for c, n in zip(found.cluster.tolist(), sizes.tolist())],
                     index=found.ids, dtype="string")

    def hook(images: pd.DataFrame) -> pd.Series:
        return pd.Series(images["id"].astype(str).map(keys).to_numpy(), index=images.index, dtype="string")

    return hook
