"""The data side of the box tasks (localization, detection): objects per image, splits, decoding,
resizing with the boxes, augmentation with the boxes, batches.

Boxes arrive as the manifest's COCO ``x, y, w, h`` in pixels of the image as displayed. Every
geometric change (resizing to the model's input, online augmentation) goes through
``datakit.augmentation`` (``resize.resize_sample``, ``targets.apply``), so the boxes always
follow the pixels; inside a batch they are ``x0, y0, x1, y1`` in input pixels (torchvision's
convention). ``resize.boxes_to_original`` maps predictions back to the original image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from datakit.data import (IMAGENET_MEAN, IMAGENET_STD, Preprocess, assign_splits, channel_stats, output_classes,
                          read_image, usable_images)
from datakit.errors import DatakitError
from datakit.manifest import Manifest
from datakit.tasks.arraydata import AugmentedArrays
from datakit.tasks.box_targets import NEGATIVE, largest_object_class, target_boxes
from datakit.tasks.fits import what_it_has
from datakit.splitting import SplitPlan



@dataclass
class BoxSplits:
    """Usable images by split with their objects, and the class table the model uses."""

    root: Path
    classes: list[str]
    category_ids: list[int]
    frames: dict[str, pd.DataFrame]  # split -> id, path, label (stratification key), channels
    objects: dict[str, list[tuple[np.ndarray, np.ndarray]]]  # split -> per row: (boxes x y w h, class indices)
    plan: SplitPlan | None
    notes: list[str]
    where: str = "manifest"
    counts: dict[str, Any] = field(default_factory=dict)

    def split_table(self) -> pd.DataFrame:
        parts = [f.assign(split=name)[["id", "path", "label", "split"]] for name, f in self.frames.items()]
        return pd.concat(parts, ignore_index=True)


def _missing_boxes(manifest: Manifest, where: str, task: str) -> DatakitError:
    return DatakitError(f"{where}: task {task} needs boxes (annotations with bbox_x, bbox_y, bbox_w, bbox_h) "
                        f"and none has one{what_it_has(manifest, 'boxes')}; ingest a COCO, VOC, YOLO or LabelMe "
                        "data set for boxes")


def prepare_boxes(manifest: Manifest, data_config: Any, seed: int, task: str, one_object: bool,
                  fixed_splits: pd.DataFrame | None = None, classes: list[str] | None = None) -> BoxSplits:
    """Usable images with their boxes, split. ``one_object``: localization (the largest box of each
    image is its object; images without one are not used); else detection (images without
    objects are kept as negatives)."""
    where = str(manifest.location or "manifest")
    ann = manifest.annotations
    notes: list[str] = []
    complete, boxed, dropped = target_boxes(ann)
    if complete.empty:
        raise _missing_boxes(manifest, where, task)
    if dropped["crowd"]:
        notes.append(f"{dropped['crowd']} crowd regions (iscrowd) are not training targets")
    if dropped["degenerate"]:
        notes.append(f"{dropped['degenerate']} boxes with no area are not used")
    ok = usable_images(manifest, where, notes)
    boxed = boxed[boxed["image_id"].isin(set(ok["id"]))]
    if classes is None:
        classes = output_classes(manifest, set(boxed["category"].astype(str)), notes, "usable boxes")
        if not classes:
            raise _missing_boxes(manifest, where, task)
        if one_object and len(classes) < 2:
            raise DatakitError(f"{where}: localization needs at least two classes, found 1 ('{classes[0]}')")
    ids = {c["name"]: int(c["id"]) for c in manifest.categories}
    unknown = sorted(set(boxed["category"].astype(str)) - set(classes))
    if unknown:
        raise DatakitError(f"{where}: categor(ies) {', '.join(repr(u) for u in unknown)} are not classes of this "
                           f"model (classes: {', '.join(classes)})")
    index_of = {name: i for i, name in enumerate(classes)}
    boxed = boxed.assign(_area=boxed["bbox_w"] * boxed["bbox_h"], _class=boxed["category"].astype(str).map(index_of))
    per_image = {k: g for k, g in boxed.groupby("image_id", sort=False)}
    counts: dict[str, Any] = {}
    if one_object:
        several = sum(1 for g in per_image.values() if len(g) > 1)
        if several:
            notes.append(f"{several} images hold several objects: each one's largest box is its object")
        without = ok[~ok["id"].isin(per_image.keys())]
        if len(without):
            notes.append(f"{len(without)} usable images have no box and are not used (localization needs one)")
        ok = ok[ok["id"].isin(per_image.keys())]
    else:
        negatives = int((~ok["id"].isin(per_image.keys())).sum())
        counts["negatives"] = negatives
        if negatives:
            notes.append(f"{negatives} images have no objects: kept as negatives (background only)")

    def objects_of(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        group = per_image.get(image_id)
        if group is None:
            return np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
        if one_object:
            group = group.loc[[group["_area"].idxmax()]]
        return (group[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64),
                group["_class"].to_numpy(np.int64))

    # the stratification key: the largest object's class (the image's own label for localization)
    rows = ok.assign(label=largest_object_class(boxed, ok["id"]).fillna(NEGATIVE))
    splits, plan = assign_splits(rows, data_config, seed, fixed_splits, where, notes)
    frames = split_frames(rows, splits, where)
    objects = {name: [objects_of(i) for i in frame["id"]] for name, frame in frames.items()}
    seen = {name: np.bincount(np.concatenate([o[1] for o in objects[name]] or [np.zeros(0, np.int64)]),
                              minlength=len(classes)) for name in objects}
    for name in ("val", "test"):
        never = [f"{classes[k]} ({int(seen[name][k])})" for k in range(len(classes))
                 if seen[name][k] and not seen["train"][k]]
        if never:
            notes.append(f"class(es) in {name} but never in train (objects): {', '.join(never)}; the model cannot "
                         "learn them and they count as misses")
    counts["objects"] = {name: int(v.sum()) for name, v in seen.items()}
    return BoxSplits(manifest.root(), list(classes), [ids[c] for c in classes], frames, objects, plan, notes, where,
                     counts)


# ---------------------------------------------------------------------------------------------
# decoding and resizing, with the boxes


def split_frames(rows: pd.DataFrame, splits: pd.Series, where: str) -> dict[str, pd.DataFrame]:
    """The train/val/test image tables (id, path, label, channels; sorted by id) of the rows as
    ``assign_splits`` placed them; an empty train or val split is a clear error."""
    frames: dict[str, pd.DataFrame] = {}
    for name in ("train", "val", "test"):
        chosen = rows[splits.to_numpy() == name]
        frames[name] = pd.DataFrame({
            "id": chosen["id"].astype(str).to_numpy(), "path": chosen["path"].astype(str).to_numpy(),
            "label": chosen["label"].astype(str).to_numpy(),
            "channels": chosen["channels"].fillna(3).astype(int).to_numpy(),
        }).sort_values("id", kind="stable").reset_index(drop=True)
    for name in ("train", "val"):
        if frames[name].empty:
            raise DatakitError(f"{where}: split '{name}' has no usable images; training needs train and val "
                               f"(set data.val_fraction, or give the manifest a '{name}' split)")
    return frames


def load_sample(path: str | Path, preprocess: Preprocess, boxes: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """(image resized for the model, boxes x y w h moved with it, their labels, original (h, w))."""
    from datakit.augmentation.resize import resize_sample
    from datakit.augmentation.targets import Sample

    image = read_image(path, preprocess.channels)
    sample = Sample(image=image, boxes=np.zeros((0, 4)) if boxes is None else boxes,
                    labels=np.zeros(0, dtype=np.int64) if labels is None else labels)
    if image.shape[:2] == (preprocess.height, preprocess.width):
        result_sample = sample
    else:
        result_sample = resize_sample(sample, preprocess.height, preprocess.width, preprocess.resize).sample
    return result_sample.image, result_sample.boxes, result_sample.labels, image.shape[:2]


def decode_split(root: Path, frame: pd.DataFrame, objects: list[tuple[np.ndarray, np.ndarray]],
                 preprocess: Preprocess, on_image: Any = None) -> tuple[np.ndarray, list, dict[int, str], int]:
    """Every image of a split resized, its objects moved along; failures by row; objects lost in resizing."""
    out = np.zeros((len(frame), preprocess.height, preprocess.width, preprocess.channels), dtype=np.uint8)
    moved: list[tuple[np.ndarray, np.ndarray]] = []
    failures: dict[int, str] = {}
    lost = 0
    for i, (path, (boxes, labels)) in enumerate(zip(frame["path"], objects)):
        try:
            image, new_boxes, new_labels, _ = load_sample(root / path, preprocess, boxes, labels)
            out[i] = image
            lost += len(boxes) - len(new_boxes)
            moved.append((new_boxes, new_labels))
        except DatakitError as exc:
            failures[i] = str(exc)
            moved.append((np.zeros((0, 4)), np.zeros(0, dtype=np.int64)))
        if on_image is not None:
            on_image(1)
    return out, moved, failures, lost


def normalization(mode: str, channels: int, train_images: np.ndarray) -> tuple[list[float], list[float]]:
    if mode == "none":
        return [], []
    if mode == "imagenet":
        if channels == 3:
            return list(IMAGENET_MEAN), list(IMAGENET_STD)
        return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
    return channel_stats(train_images)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


class BoxDataset(AugmentedArrays):
    """(images NxCxHxW, targets [{"boxes": x0 y0 x1 y1 input pixels, "labels"}]) for rows of one split."""

    def __init__(self, images: np.ndarray, objects: Sequence[tuple[np.ndarray, np.ndarray]], preprocess: Preprocess,
                 transform: Any = None, keep_one: bool = False) -> None:
        super().__init__(images, preprocess, transform)
        self.objects = list(objects)
        self.keep_one = keep_one  # localization: an augmentation that loses the object is not used

    def _one(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = self.images[index]
        boxes, labels = self.objects[index]
        if self.transform is None:
            return image, boxes, labels
        from datakit.augmentation.targets import Sample

        result = self.augment(Sample(image=image, boxes=boxes, labels=labels))
        if self.keep_one and len(result.boxes) != len(boxes):
            return image, boxes, labels
        return result.image, result.boxes, result.labels

    def __getitem__(self, index: int) -> Any:
        x, targets = self.__getitems__([index])
        return x[0], targets[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        parts = [self._one(i) for i in indices]
        if self._ready is not None:
            x = self._ready[torch.as_tensor(list(indices), dtype=torch.long)]
        else:
            x = self.preprocess.to_tensor(np.stack([p[0] for p in parts]))
        return x, [self._target(p) for p in parts]

    @staticmethod
    def _target(part: tuple[np.ndarray, ...]) -> dict[str, torch.Tensor]:
        return {"boxes": torch.as_tensor(xywh_to_xyxy(part[1]), dtype=torch.float32),
                "labels": torch.tensor(np.asarray(part[2], dtype=np.int64))}


def build_datasets(task: Any, data: BoxSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                   notes: list[str], keep_one: bool) -> dict[str, BoxDataset]:
    """Decoded, resized images per split (all in memory), normalization from train, augmentation on train."""
    total = sum(len(f) for f in data.frames.values())
    display.start_task("loading images", total)
    decoded = {}
    for name, frame in data.frames.items():
        if not len(frame):
            continue
        images, moved, failures, lost = decode_split(data.root, frame, data.objects[name], preprocess,
                                                     display.advance)
        if lost:
            notes.append(f"{lost} {name} objects were cut away by resizing (data.resize {preprocess.resize})")
        if failures:
            keep = [i for i in range(len(frame)) if i not in failures]
            data.frames[name] = frame.iloc[keep].reset_index(drop=True)
            data.objects[name] = [data.objects[name][i] for i in keep]
            images, moved = images[keep], [moved[i] for i in keep]
            first = failures[min(failures)]
            notes.append(f"{len(failures)} {name} image(s) could not be decoded and are left out (first: {first})")
            display.note(f"[yellow]skipped:[/] {notes[-1]}")
        if keep_one:  # localization: an image whose object resizing cut away has nothing to learn
            empty = [i for i, (b, _) in enumerate(moved) if not len(b)]
            if empty:
                keep = [i for i in range(len(moved)) if i not in set(empty)]
                data.frames[name] = data.frames[name].iloc[keep].reset_index(drop=True)
                data.objects[name] = [data.objects[name][i] for i in keep]
                images, moved = images[keep], [moved[i] for i in keep]
                notes.append(f"{len(empty)} {name} image(s) lost their object in resizing and are left out")
        decoded[name] = (images, moved)
    transform = train_transform(task, decoded, data.where, preprocess, fill_normalization)
    return {name: BoxDataset(images, moved, preprocess, transform if name == "train" else None, keep_one)
            for name, (images, moved) in decoded.items()}


def train_transform(task: Any, decoded: dict[str, tuple[np.ndarray, Any]], where: str, preprocess: Preprocess,
                    fill_normalization: bool) -> Any:
    """After decoding (split -> (images, targets)): train and val must hold images; the normalization
    comes from the train images; the online augmentation (moving the targets) for the train split."""
    from datakit.augmentation.specs import resolve

    config = task.config
    for name in ("train", "val"):
        if name not in decoded or not len(decoded[name][0]):
            raise DatakitError(f"{where}: no image of split '{name}' could be decoded; see the notes above")
    if fill_normalization:
        preprocess.mean, preprocess.std = normalization(config.data.normalize, preprocess.channels,
                                                        decoded["train"][0])
    return resolve(config.augment, task=task.name, seed=config.seed).compose if config.augment else None


def collate_targets(batch: Any) -> Any:
    return batch
