"""A trained instance-segmentation run at work: its masks in the images' own pixels, as RLE.

``boxrun`` does the box side of ``eval`` and ``predict`` for every object task; for a run whose
detections carry masks it calls here: :func:`mask_rles` maps the model's masks (probabilities at
the input size) back onto the original image (the inverse of the resize policy) and encodes them
as RLE, so that COCO results carry ``segmentation`` and ``datakit.metrics`` scores ``segm``;
:func:`draw_instances` and :func:`overlay_grid` draw instance outlines in colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from datakit.tasks.instance import MASK_THRESHOLD

# one colour per instance (not per class: two squares side by side must be told apart)
COLOURS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 170, 0), (190, 64, 255), (0, 220, 220),
           (255, 64, 220), (200, 240, 60), (255, 200, 200), (0, 150, 140)]



def masks_to_original(masks: torch.Tensor, h: int, w: int, height: int, width: int, policy: str) -> np.ndarray:
    """(K, height, width) mask probabilities on the model's input -> (K, h, w) 0/1 masks on the
    original image: padding (letterbox) removed or the cropped margin (crop) restored, then
    resampled bilinearly and thresholded (probabilities, never 0/1 masks, are interpolated)."""
    from datakit.augmentation.resize import scaled_size

    if masks.dim() == 4:
        masks = masks[:, 0]
    masks = masks.float()
    if not len(masks):
        return np.zeros((0, h, w), dtype=np.uint8)
    out_h, out_w = scaled_size(h, w, height, width, policy)
    if policy == "letterbox":  # PadIfNeeded centres: the left/top pad is the floor of half the margin
        top, left = (height - out_h) // 2, (width - out_w) // 2
        masks = masks[:, top:top + out_h, left:left + out_w]
    elif policy == "crop":  # CenterCrop kept the middle of the scaled image: the rest is background
        top, left = (out_h - height) // 2, (out_w - width) // 2
        masks = F.pad(masks, (left, out_w - width - left, top, out_h - height - top))
    if masks.shape[1:] != (h, w):
        masks = F.interpolate(masks[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return (masks >= MASK_THRESHOLD).to(torch.uint8).cpu().numpy()


def mask_rles(masks: torch.Tensor, h: int, w: int, preprocess: Any) -> list[dict[str, Any]]:
    """The masks of one image's detections as pycocotools RLEs on the original ``h`` x ``w`` image."""
    from datakit.tasks.instancedata import encode

    return encode(masks_to_original(masks, h, w, preprocess.height, preprocess.width, preprocess.resize))


def rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE as COCO results write it (``counts`` a string)."""
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes)
            else counts}


def _outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], fill: float = 0.35) -> None:
    import cv2

    region = mask.astype(bool)
    image[region] = (image[region] * (1 - fill) + np.asarray(colour) * fill).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, colour, 1)


def draw_instances(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None, labels: np.ndarray,
                   rles: Sequence[dict[str, Any]], classes: list[str], min_score: float = 0.25) -> np.ndarray:
    """RGB image with each instance's mask tinted and outlined in its own colour, labelled with its
    class (and score); instances scoring below ``min_score`` are left out."""
    import cv2

    from datakit.tasks.instancedata import decode

    image = np.ascontiguousarray(image.copy())
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    masks = decode(rles, image.shape[0], image.shape[1])
    shown = 0
    for i, (b, c, mask) in enumerate(zip(boxes, labels, masks)):
        s = None if scores is None else float(scores[i])
        if s is not None and s < min_score:
            continue
        colour = COLOURS[shown % len(COLOURS)]
        shown += 1
        _outline(image, mask, colour)
        text = classes[int(c)] if 0 <= int(c) < len(classes) else "?"
        cv2.putText(image, text if s is None else f"{text} {s:.2f}", (int(b[0]), max(8, int(b[1]) - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)
    return image


def overlay_grid(truth: Any, paths: list[Path], ids: list[str], found: list[Any], classes: list[str], path: Path,
                 split: str, limit: int = 12) -> Path:
    """The first ``limit`` images of the split, each as image | true instances | predicted instances
    (score >= 0.25), outlines in colour."""
    import json

    from datakit import geometry, plots
    from datakit.data import read_image
    from datakit.tasks.boxdata import xywh_to_xyxy

    ann = truth.manifest.annotations
    index = {name: i for i, name in enumerate(classes)}
    root = truth.manifest.root()
    pictures, titles = [], []
    for image_id, file, f in list(zip(ids, paths, found))[:limit]:
        if f is None:
            continue
        image = read_image(file, 3)
        h, w = image.shape[:2]
        rows = ann[(ann["image_id"].astype(str) == image_id) & ann["segmentation_kind"].notna()]
        true_rles = [geometry.segmentation_rle(k, json.loads(v) if isinstance(v, str) else v, h, w, root)
                     for k, v in zip(rows["segmentation_kind"], rows["segmentation"])]
        from datakit.metrics.truth import c_rle

        true_rles = [c_rle(r, h, w) for r in true_rles]
        true = draw_instances(image, xywh_to_xyxy(rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(float)),
                              None, rows["category"].astype(str).map(index).fillna(-1).to_numpy(np.int64),
                              true_rles, classes)
        predicted = draw_instances(image, f[0], f[1], f[2], f[3], classes)
        gap = np.full((h, 2, 3), 255, dtype=np.uint8)
        pictures.append(np.concatenate([image, gap, true, gap, predicted], axis=1))
        titles.append(f"{Path(str(file)).name}: {len(rows)} true, {int((f[1] >= 0.25).sum())} found")
    return plots.image_grid(pictures, titles, path,
                            title=f"{split}: image | true instances | predicted instances (score >= 0.25)")
