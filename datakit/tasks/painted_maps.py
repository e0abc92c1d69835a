"""Class maps painted from instance annotations: a semantic target where the data set has
instance masks (COCO polygons or RLEs, instance PNGs) rather than class PNGs.

Free of torch: training (``tasks.maskdata``) and the scoring of predicted mask folders
(``metrics.segmentation``) paint the very same map, so a run's masks score the same both ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datakit import geometry
from datakit.errors import DatakitError
from datakit.geometry import IGNORE


def blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def has_instance_masks(annotations: pd.DataFrame) -> bool:
    """Whether any annotation carries a mask (then every image can be painted, negatives as background)."""
    return bool(len(annotations)) and "segmentation_kind" in annotations.columns and \
        bool(annotations["segmentation_kind"].notna().any())


def paint_instances(group: pd.DataFrame | None, height: int, width: int, index_of: dict[str, int],
                    root: Path) -> tuple[np.ndarray, int]:
    """A class map painted from an image's annotations (largest first); (map, boxes without a mask)."""
    out = np.zeros((height, width), dtype=np.uint8)
    if group is None or group.empty:
        return out, 0
    has_mask = group["segmentation_kind"].notna() if "segmentation_kind" in group.columns else \
        pd.Series(False, index=group.index)
    unmasked = group[~has_mask]
    for _, row in unmasked.iterrows():  # a box without a mask: its pixels are unknown
        if blank(row.get("bbox_w")):
            continue
        x0, y0 = int(np.floor(row["bbox_x"])), int(np.floor(row["bbox_y"]))
        x1, y1 = int(np.ceil(row["bbox_x"] + row["bbox_w"])), int(np.ceil(row["bbox_y"] + row["bbox_h"]))
        out[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = IGNORE
    masked = group[has_mask]
    area = masked["area"].fillna(0).to_numpy() if "area" in masked.columns else np.zeros(len(masked))
    for position in np.argsort(-area, kind="stable"):
        row = masked.iloc[int(position)]
        mask = geometry.segmentation_mask(str(row["segmentation_kind"]), _segmentation(row["segmentation"]),
                                          height, width, root)
        if mask.shape != (height, width):
            raise DatakitError(f"annotation {row['id']}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                               f"{width}x{height}; masks are never resized silently")
        crowd = "iscrowd" in row.index and not blank(row["iscrowd"]) and int(row["iscrowd"]) == 1
        out[mask > 0] = IGNORE if crowd else index_of[str(row["category"])]
    return out, len(unmasked)


def _segmentation(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
