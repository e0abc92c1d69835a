"""The boxes the box tasks train on, and the class each image is stratified by when splitting.

Free of torch, so the data-aware defaults (``engine.defaults``) plan exactly the split that
``boxdata.prepare_boxes`` will make: the same boxes dropped, the same largest box chosen.
"""

from __future__ import annotations

import pandas as pd

NEGATIVE = "(no object)"  # the stratification key of an image without objects
BOX_COLUMNS = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]


def target_boxes(annotations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(complete boxes, those that are training targets, how many were dropped and why).

    Crowd regions (``iscrowd``) and boxes without area are not targets."""
    complete = annotations[annotations[BOX_COLUMNS].notna().all(axis=1)] if len(annotations) else annotations
    dropped = {"crowd": 0, "degenerate": 0}
    targets = complete
    if len(targets) and "iscrowd" in targets.columns:
        crowd = targets["iscrowd"].fillna(0).astype(int) == 1
        dropped["crowd"] = int(crowd.sum())
        targets = targets[~crowd]
    if len(targets):
        degenerate = (targets["bbox_w"] <= 0) | (targets["bbox_h"] <= 0)
        dropped["degenerate"] = int(degenerate.sum())
        targets = targets[~degenerate]
    return complete, targets, dropped


def largest_boxes(boxes: pd.DataFrame, image_ids: pd.Series | list[str] | set[str]) -> pd.DataFrame:
    """One row per image of ``image_ids`` that has a box: its largest (of equal areas the first in
    manifest order: the object localization trains on and is scored against)."""
    boxes = boxes[boxes["image_id"].isin(set(image_ids))]
    area = boxes["bbox_w"].astype("float64") * boxes["bbox_h"].astype("float64")
    ordered = boxes.assign(_area=area).sort_values("_area", ascending=False, kind="stable")
    return ordered.drop_duplicates("image_id", keep="first").drop(columns="_area")


def largest_object_class(boxes: pd.DataFrame, image_ids: pd.Series) -> pd.Series:
    """Each image's largest box's category, indexed like ``image_ids`` (null without a box)."""
    largest = largest_boxes(boxes, image_ids).set_index("image_id")["category"].astype(str)
    return pd.Series(image_ids.map(largest).to_numpy(), index=image_ids.index, dtype="string")
