"""What a manifest holds instead of the targets a task needs, for the task's "needs X" error."""

from __future__ import annotations

from datakit.manifest import Manifest


def what_it_has(manifest: Manifest, besides: str) -> str:
    """"; it has 120 boxes (task detection fits) and image labels (...)", naming each kind of target
    the manifest holds other than ``besides`` (boxes, semantic_masks or labels) and the task it fits;
    empty when it holds none."""
    images, ann = manifest.images, manifest.annotations
    has = []
    boxes = int(ann["bbox_w"].notna().sum()) if len(ann) and "bbox_w" in ann.columns else 0
    if boxes and besides != "boxes":
        has.append(f"{boxes} boxes (task detection fits)")
    if besides != "semantic_masks" and "semantic_mask" in images.columns and images["semantic_mask"].notna().any():
        has.append("semantic masks (task semantic_segmentation fits)")
    if besides != "labels" and "label" in images.columns and images["label"].notna().any():
        has.append("image labels (task classification fits)")
    return "; it has " + " and ".join(has) if has else ""
