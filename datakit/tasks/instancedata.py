"""The data side of instance segmentation: objects with their masks, kept as RLE.

The manifest's objects with a segmentation (polygon, RLE or an instance-mask PNG) are the
targets; an image without any is a negative. Splitting and the box side are detection's
(``boxdata.prepare_boxes`` on the objects that have masks), so the two tasks split a manifest
alike. Masks stay compressed RLE (pycocotools) from the manifest to the batch: each image is
decoded once, resized to the model's input together with its masks through
``datakit.augmentation`` (``resize.resize_sample``), and its masks are encoded back to RLE;
dense masks exist only for the images of one batch, while that batch is augmented (``targets.apply``,
which also recomputes every box from its moved mask) and trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from datakit.data import Preprocess, read_image
from datakit.errors import DatakitError
from datakit.manifest import Manifest
from datakit.tasks import boxdata
from datakit.tasks.fits import what_it_has

Rle = dict[str, Any]


@dataclass
class InstanceSplits(boxdata.BoxSplits):
    """Detection's splits plus, per split and row, each object's segmentation (kind, value) in
    object order; after ``datasets`` the masks are RLEs at the model's input size."""

    segmentations: dict[str, list[list[tuple[str, Any]]]] = field(default_factory=dict)


def _missing_masks(manifest: Manifest, where: str, task: str) -> DatakitError:
    return DatakitError(f"{where}: task {task} needs instance masks (annotations with a segmentation: polygon, "
                        f"rle or mask_file) and none has one{what_it_has(manifest, 'instance_masks')}; ingest a COCO "
                        "data set with segmentations, LabelMe polygons, YOLO segment labels or instance-mask PNGs")


def prepare_instances(manifest: Manifest, data_config: Any, seed: int, task: str,
                      fixed_splits: pd.DataFrame | None = None, classes: list[str] | None = None) -> InstanceSplits:
    """Usable images with their objects that have masks, split as detection splits them."""
    where = str(manifest.location or "manifest")
    ann = manifest.annotations
    if not len(ann) or "segmentation_kind" not in ann.columns or not ann["segmentation_kind"].notna().any():
        raise _missing_masks(manifest, where, task)
    notes: list[str] = []
    masked = ann["segmentation_kind"].notna()
    if (~masked).any():
        notes.append(f"{int((~masked).sum())} objects have a box but no mask: not instance targets")
    boxed = masked & ann["bbox_w"].notna() & ann["bbox_h"].notna() & ann["bbox_x"].notna() & ann["bbox_y"].notna()
    if (masked & ~boxed).any():
        notes.append(f"{int((masked & ~boxed).sum())} objects with a mask have no box in the manifest and are not "
                     "used (re-ingest to compute boxes from the masks)")
    # the filters prepare_boxes applies, applied first: its objects per image are then exactly these, in order
    keep = boxed & (ann["bbox_w"] > 0) & (ann["bbox_h"] > 0)
    if "iscrowd" in ann.columns:
        keep &= ann["iscrowd"].fillna(0).astype(int) != 1
    chosen = ann[keep]
    if chosen.empty:
        raise _missing_masks(manifest, where, task)
    data = boxdata.prepare_boxes(replace(manifest, annotations=chosen.reset_index(drop=True)), data_config, seed,
                                 task, one_object=False, fixed_splits=fixed_splits, classes=classes)
    per_image = {k: list(zip(g["segmentation_kind"].astype(str), g["segmentation"]))
                 for k, g in chosen.groupby(chosen["image_id"].astype(str), sort=False)}
    segmentations: dict[str, list[list[tuple[str, Any]]]] = {}
    for name, frame in data.frames.items():
        rows = []
        for image_id, (boxes, _) in zip(frame["id"], data.objects[name]):
            segs = per_image.get(str(image_id), [])
            if len(segs) != len(boxes):  # prepare_boxes changed its filters: fail loudly, never misalign
                raise DatakitError(f"{where}: image {image_id} has {len(boxes)} boxes but {len(segs)} masks")
            rows.append(segs)
        segmentations[name] = rows
    return InstanceSplits(**{**data.__dict__, "notes": notes + data.notes}, segmentations=segmentations)


# ---------------------------------------------------------------------------------------------
# RLE


def encode(masks: np.ndarray) -> list[Rle]:
    """(N, H, W) 0/1 masks -> pycocotools RLEs (bytes counts)."""
    from pycocotools import mask as mask_utils

    if not len(masks):
        return []
    return list(mask_utils.encode(np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1))))


def decode(rles: Sequence[Rle], height: int, width: int) -> np.ndarray:
    """pycocotools RLEs -> (N, H, W) uint8 masks."""
    from pycocotools import mask as mask_utils

    if not len(rles):
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.ascontiguousarray(np.moveaxis(mask_utils.decode(list(rles)), -1, 0))


def segmentation_masks(segmentations: Sequence[tuple[str, Any]], height: int, width: int,
                       root: Path) -> np.ndarray:
    """(N, H, W) masks of one image's manifest segmentations (polygon, rle, mask_file)."""
    from datakit import geometry

    out = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, (kind, value) in enumerate(segmentations):
        value = json.loads(value) if isinstance(value, str) else value
        mask = geometry.segmentation_mask(kind, value, height, width, root)
        if mask.shape[:2] != (height, width):
            raise DatakitError(f"mask {i + 1} is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height} "
                               "(masks are never resized to fit; fix the mask or the image)")
        out[i] = mask
    return out


def load_instances(path: Path, preprocess: Preprocess, boxes: np.ndarray, labels: np.ndarray,
                   segmentations: Sequence[tuple[str, Any]], root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                   list[Rle], int]:
    """(image at the input size, boxes x y w h, labels, mask RLEs, empty masks) moved together."""
    from datakit.augmentation.resize import resize_sample
    from datakit.augmentation.targets import Sample, mask_boxes

    image = read_image(path, preprocess.channels)
    masks = segmentation_masks(segmentations, image.shape[0], image.shape[1], root)
    _, present = mask_boxes(masks) if len(masks) else (None, np.zeros(0, dtype=bool))
    empty = int((~present).sum())
    boxes, labels, masks = boxes[present], labels[present], masks[present]
    sample = Sample(image=image, boxes=boxes, labels=labels, masks=masks)
    if image.shape[:2] != (preprocess.height, preprocess.width):
        sample = resize_sample(sample, preprocess.height, preprocess.width, preprocess.resize).sample
    return sample.image, sample.boxes, sample.labels, encode(sample.masks), empty


class InstanceDataset(boxdata.BoxDataset):
    """(images NxCxHxW, targets [{"boxes" x0 y0 x1 y1 input pixels, "labels", "masks" N x H x W uint8}]);
    ``objects`` per row: (boxes x y w h, labels, mask RLEs), decoded only when the row is in a batch."""

    def _one(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        image = self.images[index]
        boxes, labels, rles = self.objects[index]
        masks = decode(rles, image.shape[0], image.shape[1])
        if self.transform is None:
            return image, boxes, labels, masks
        from datakit.augmentation.targets import Sample

        result = self.augment(Sample(image=image, boxes=boxes, labels=labels, masks=masks))
        return result.image, result.boxes, result.labels, result.masks

    @staticmethod
    def _target(part: tuple[np.ndarray, ...]) -> dict[str, torch.Tensor]:
        return {**boxdata.BoxDataset._target(part),
                "masks": torch.from_numpy(np.ascontiguousarray(part[3], dtype=np.uint8))}


def build_datasets(task: Any, data: InstanceSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                   notes: list[str]) -> dict[str, InstanceDataset]:
    """Decoded, resized images per split with their masks as RLE, normalization from train,
    augmentation on train; images that fail are left out and counted."""
    from datakit.augmentation.specs import resolve

    config = task.config
    display.start_task("loading images and masks", sum(len(f) for f in data.frames.values()))
    decoded: dict[str, tuple[np.ndarray, list]] = {}
    for name, frame in data.frames.items():
        if not len(frame):
            continue
        images = np.zeros((len(frame), preprocess.height, preprocess.width, preprocess.channels), dtype=np.uint8)
        moved: list[tuple[np.ndarray, np.ndarray, list[Rle]]] = []
        failures: dict[int, str] = {}
        lost = empty = 0
        for i, (path, (boxes, labels), segs) in enumerate(zip(frame["path"], data.objects[name],
                                                              data.segmentations[name])):
            try:
                image, new_boxes, new_labels, rles, blank = load_instances(data.root / path, preprocess, boxes,
                                                                           labels, segs, data.root)
                images[i] = image
                empty += blank
                lost += len(boxes) - blank - len(new_boxes)
                moved.append((new_boxes, new_labels, rles))
            except DatakitError as exc:
                failures[i] = f"{path}: {exc}"
                moved.append((np.zeros((0, 4)), np.zeros(0, dtype=np.int64), []))
            display.advance(1)
        if empty:
            notes.append(f"{empty} {name} objects have an empty mask and are not used")
        if lost:
            notes.append(f"{lost} {name} objects were cut away by resizing (data.resize {preprocess.resize})")
        if failures:
            keep = [i for i in range(len(frame)) if i not in failures]
            data.frames[name] = frame.iloc[keep].reset_index(drop=True)
            images, moved = images[keep], [moved[i] for i in keep]
            data.objects[name] = [(m[0], m[1]) for m in moved]
            notes.append(f"{len(failures)} {name} image(s) could not be read with their masks and are left out "
                         f"(first: {failures[min(failures)]})")
            display.note(f"[yellow]skipped:[/] {notes[-1]}")
        decoded[name] = (images, moved)
    for name in ("train", "val"):
        if name not in decoded or not len(decoded[name][0]):
            raise DatakitError(f"{data.where}: no image of split '{name}' could be read; see the notes above")
    train_objects = sum(len(m[1]) for m in decoded["train"][1])
    if not train_objects:
        raise DatakitError(f"{data.where}: no train image has an object with a non-empty mask; instance "
                           "segmentation has nothing to learn")
    if fill_normalization:
        preprocess.mean, preprocess.std = boxdata.normalization(config.data.normalize, preprocess.channels,
                                                                decoded["train"][0])
    transform = resolve(config.augment, task=task.name, seed=config.seed).compose if config.augment else None
    return {name: InstanceDataset(images, moved, preprocess, transform if name == "train" else None)
            for name, (images, moved) in decoded.items()}
