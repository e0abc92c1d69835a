"""The data side of semantic segmentation: one class map per image, built from whatever the
manifest holds, split, resized with the image, augmented with the image, batched.

Where a class map comes from, per image:

- its ``semantic_mask`` PNG (pixel value = category id, 255 = ignore), when it has one;
- else its instance masks (polygons, RLE or mask files), painted per class, the largest first so a
  small object on a large one stays visible; an annotation with a box but no mask marks its box
  as ignore (its pixels are unknown, not background);
- an image with neither is a negative (all background) when the manifest's masks come from
  annotations, and is left out (noted) when other images carry semantic PNGs.

Class ids follow the manifest's category table: values are category ids, one internal
``background`` class takes value 0 when no category has id 0. The model's outputs are the
classes in value order (``classes``, ``values``); inside the task a map holds class *indices*,
255 still meaning ignore. Every geometric change goes through ``datakit.augmentation``
(``resize.resize_sample``, ``targets.apply``): label maps move with nearest neighbour, never blended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from datakit import geometry
from datakit.data import Preprocess, assign_splits, read_image, usable_images
from datakit.errors import DatakitError
from datakit.manifest import Manifest
from datakit.metrics.segmentation import IGNORE  # 255: one ignore value for targets, loss and metrics
from datakit.splitting import SplitPlan
from datakit.tasks.boxdata import BoxSplits, split_frames, train_transform
from datakit.tasks.arraydata import AugmentedArrays
from datakit.tasks.fits import what_it_has
from datakit.tasks.painted_maps import blank as _blank, paint_instances

BACKGROUND = "background"
NEGATIVE = "(background only)"  # the stratification key of an image without objects


@dataclass
class MaskSplits:
    """Usable images by split with their class maps (class indices, original size)."""

    root: Path
    classes: list[str]
    category_ids: list[int]  # the pixel value of each class (0 = background when no category has id 0)
    frames: dict[str, pd.DataFrame]  # split -> id, path, label (stratification key), channels
    masks: dict[str, list[np.ndarray]]  # split -> per row: HxW uint8 class indices (255 = ignore)
    plan: SplitPlan | None
    notes: list[str]
    where: str = "manifest"
    counts: dict[str, Any] = field(default_factory=dict)

    split_table = BoxSplits.split_table  # id, path, label, split of every image used: the run's splits.csv


def class_table(manifest: Manifest) -> tuple[list[str], list[int]]:
    """(names, pixel values) of the model's classes: every category in id order, background 0 first
    when no category has id 0 (the same table ``datakit.metrics.segmentation.classes`` scores with)."""
    cats = sorted(manifest.categories, key=lambda c: int(c["id"]))
    names, values = [str(c["name"]) for c in cats], [int(c["id"]) for c in cats]
    if 0 not in values:
        names.insert(0, BACKGROUND)
        values.insert(0, 0)
    if IGNORE in values:
        raise DatakitError(f"category id {IGNORE} ('{names[values.index(IGNORE)]}') is the ignore value of class "
                           "maps; give that category another id")
    if max(values) > 254:
        raise DatakitError(f"category id {max(values)} does not fit an 8-bit class map (0..254; 255 = ignore)")
    return names, values


def lookup(values: Sequence[int]) -> np.ndarray:
    """Pixel value -> class index (255 for ignore and for values that are no class)."""
    table = np.full(65536, IGNORE, dtype=np.uint8)
    table[np.asarray(values, dtype=np.int64)] = np.arange(len(values), dtype=np.uint8)
    return table


def missing_masks(manifest: Manifest, where: str) -> DatakitError:
    return DatakitError(f"{where}: task semantic_segmentation needs masks (a semantic_mask PNG per image, or "
                        f"annotations with a polygon, RLE or mask-file segmentation) and none has one"
                        f"{what_it_has(manifest, 'semantic_masks')}; ingest a mask folder (--format masks) or a "
                        "COCO/LabelMe data set with segmentations")


def read_class_map(root: Path, relative: str, height: int | None, width: int | None,
                   table: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """A semantic PNG as class indices; its size must be the image's and its values category ids or 255."""
    path = root / relative
    values = geometry.read_label_png(path)
    if values.ndim != 2:
        raise DatakitError(f"{path}: a class map must have one value per pixel, got shape {values.shape}")
    if height and width and values.shape != (int(height), int(width)):
        raise DatakitError(f"{path}: mask is {values.shape[1]}x{values.shape[0]} but its image is {int(width)}x"
                           f"{int(height)}; masks are never resized silently (fix the mask or the image)")
    bad = ~allowed[values.astype(np.int64)]
    if bad.any():
        unknown = np.unique(values[bad]).tolist()
        raise DatakitError(f"{path}: pixel value(s) {', '.join(map(str, unknown[:10]))} are not category ids of the "
                           f"manifest (ids: {', '.join(map(str, np.flatnonzero(allowed[:255]).tolist()))}; 255 = "
                           "ignore); add the categories or fix the mask")
    return table[values.astype(np.int64)]


def class_maps(manifest: Manifest, rows: pd.DataFrame, names: list[str], values: list[int],
               on_image: Any = None) -> tuple[dict[str, np.ndarray], dict[str, int], int]:
    """Each row's class map (class indices, the image's size), read and checked: (id -> map, how many
    came from PNGs, instances or are negatives, annotations with a box but no mask)."""
    where = str(manifest.location or "manifest")
    ann = manifest.annotations
    table = lookup(values)
    allowed = np.zeros(65536, dtype=bool)
    allowed[values] = True
    allowed[IGNORE] = True
    index_of = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(ann["category"].dropna().astype(str)) - set(index_of)) if len(ann) else []
    if unknown:
        raise DatakitError(f"{where}: annotation categor(ies) {', '.join(map(repr, unknown))} are not in the "
                           "category table")
    wanted = set(rows["id"].astype(str))
    by_image = {k: g for k, g in ann[ann["image_id"].isin(wanted)].groupby("image_id", sort=False)} if len(ann) else {}
    root = manifest.root()
    maps: dict[str, np.ndarray] = {}
    unmasked = 0
    sources = {"semantic_png": 0, "instances": 0, "negatives": 0}
    for row in rows.itertuples(index=False):
        relative = getattr(row, "semantic_mask", None)
        if not _blank(relative):
            maps[row.id] = read_class_map(root, str(relative), row.height, row.width, table, allowed)
            sources["semantic_png"] += 1
        else:
            if _blank(row.height) or _blank(row.width):
                raise DatakitError(f"{where}: image {row.path} has no width/height; re-ingest it")
            painted, boxes = paint_instances(by_image.get(row.id), int(row.height), int(row.width), index_of, root)
            maps[row.id] = painted
            unmasked += boxes
            sources["instances" if row.id in by_image else "negatives"] += 1
        if on_image is not None:
            on_image(1)
    return maps, sources, unmasked


def mask_rows(manifest: Manifest, ok: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The usable rows a class map can be built for (an error when the manifest has no masks at all)."""
    where = str(manifest.location or "manifest")
    ann = manifest.annotations
    semantic = ok["semantic_mask"] if "semantic_mask" in ok.columns else pd.Series(pd.NA, index=ok.index)
    has_semantic = semantic.notna()
    masked_ann = ann[ann["segmentation_kind"].notna()] if len(ann) and "segmentation_kind" in ann.columns else ann[:0]
    if not has_semantic.any() and masked_ann.empty:
        raise missing_masks(manifest, where)
    if has_semantic.any():
        annotated = ok["id"].isin(set(ann["image_id"])) if len(ann) else pd.Series(False, index=ok.index)
        left = ok[~has_semantic & ~annotated]
        if len(left):
            notes.append(f"{len(left)} usable images have no semantic mask and no annotation: left out (their pixels "
                         "are unknown)")
        ok = ok[has_semantic | annotated]
    return ok


def prepare_masks(manifest: Manifest, data_config: Any, seed: int, fixed_splits: pd.DataFrame | None = None,
                  classes: list[str] | None = None, on_image: Any = None) -> MaskSplits:
    """Usable images with their class maps (read and checked here, before any training), split."""
    where = str(manifest.location or "manifest")
    notes: list[str] = []
    ok = mask_rows(manifest, usable_images(manifest, where, notes), notes)
    names, values = class_table(manifest)
    if classes is not None and list(classes) != names:
        raise DatakitError(f"{where}: the run's classes ({', '.join(classes)}) differ from the manifest's class "
                           f"table ({', '.join(names)})")
    maps, sources, unmasked = class_maps(manifest, ok, names, values, on_image)
    root = manifest.root()
    if unmasked:
        notes.append(f"{unmasked} annotations have a box but no mask: their boxes are ignored (value {IGNORE}) in "
                     "loss and metrics")
    if sources["negatives"]:
        notes.append(f"{sources['negatives']} images have no objects: kept as negatives (background only)")
    pixels = {image_id: np.bincount(m[m != IGNORE].ravel(), minlength=len(names)) for image_id, m in maps.items()}

    def key(image_id: str) -> str:  # stratify by the largest non-background class
        counts = pixels[image_id][1:] if names[0] == BACKGROUND else pixels[image_id]
        offset = 1 if names[0] == BACKGROUND else 0
        return names[int(np.argmax(counts)) + offset] if counts.sum() else NEGATIVE

    rows = ok.assign(label=ok["id"].map(key).astype("string"))
    splits, plan = assign_splits(rows, data_config, seed, fixed_splits, where, notes)
    frames = split_frames(rows, splits, where)
    masks = {name: [maps[i] for i in frame["id"]] for name, frame in frames.items()}
    train_pixels = sum((pixels[i] for i in frames["train"]["id"]), np.zeros(len(names), dtype=np.int64))
    never = [names[k] for k in range(len(names)) if not train_pixels[k]]
    if never:
        notes.append(f"class(es) with no pixel in train: {', '.join(never)}; the model cannot learn them")
    counts = {"sources": sources, "train_pixels": {n: int(v) for n, v in zip(names, train_pixels)}}
    return MaskSplits(root, names, values, frames, masks, plan, notes, where, counts)


# ---------------------------------------------------------------------------------------------
# decoding and resizing, with the class map


def load_pair(path: str | Path, preprocess: Preprocess,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """(image resized for the model, its class map moved with it (nearest), original (h, w))."""
    from datakit.augmentation.resize import resize_sample
    from datakit.augmentation.targets import Sample

    image = read_image(path, preprocess.channels)
    if mask is not None and mask.shape != image.shape[:2]:
        raise DatakitError(f"{path}: the image is {image.shape[1]}x{image.shape[0]} but its mask is {mask.shape[1]}x"
                           f"{mask.shape[0]}; masks are never resized silently")
    if image.shape[:2] == (preprocess.height, preprocess.width):
        return image, mask, image.shape[:2]
    result = resize_sample(Sample(image=image, semantic_mask=mask), preprocess.height, preprocess.width,
                           preprocess.resize).sample
    return result.image, result.semantic_mask, image.shape[:2]


class MaskDataset(AugmentedArrays):
    """(images NxCxHxW float, class maps NxHxW long with 255 = ignore) for rows of one split."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, preprocess: Preprocess, transform: Any = None) -> None:
        super().__init__(images, preprocess, transform)
        self.masks = masks

    def _one(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from datakit.augmentation.targets import Sample

        result = self.augment(Sample(image=self.images[index], semantic_mask=self.masks[index]))
        return result.image, result.semantic_mask

    def __getitem__(self, index: int) -> Any:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = torch.as_tensor(list(indices), dtype=torch.long)
        if self._ready is not None:
            return self._ready[chosen], torch.as_tensor(self.masks[chosen.numpy()]).long()
        parts = [self._one(i) for i in indices]
        x = self.preprocess.to_tensor(np.stack([p[0] for p in parts]))
        return x, torch.as_tensor(np.stack([p[1] for p in parts])).long()


def build_datasets(task: Any, data: MaskSplits, preprocess: Preprocess, display: Any, fill_normalization: bool,
                   notes: list[str]) -> dict[str, MaskDataset]:
    """Decoded, resized images and class maps per split (all in memory), normalization from train,
    augmentation (moving the maps with the pixels) on train."""
    display.start_task("loading images", sum(len(f) for f in data.frames.values()))
    decoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, frame in data.frames.items():
        if not len(frame):
            continue
        images = np.zeros((len(frame), preprocess.height, preprocess.width, preprocess.channels), dtype=np.uint8)
        masks = np.zeros((len(frame), preprocess.height, preprocess.width), dtype=np.uint8)
        failures: dict[int, str] = {}
        for i, (path, mask) in enumerate(zip(frame["path"], data.masks[name])):
            try:
                image, moved, _ = load_pair(data.root / path, preprocess, mask)
                images[i], masks[i] = image, moved
            except DatakitError as exc:
                failures[i] = str(exc)
            display.advance(1)
        if failures:
            keep = [i for i in range(len(frame)) if i not in failures]
            data.frames[name] = frame.iloc[keep].reset_index(drop=True)
            data.masks[name] = [data.masks[name][i] for i in keep]
            images, masks = images[keep], masks[keep]
            notes.append(f"{len(failures)} {name} image(s) could not be decoded and are left out "
                         f"(first: {failures[min(failures)]})")
            display.note(f"[yellow]skipped:[/] {notes[-1]}")
        decoded[name] = (images, masks)
    transform = train_transform(task, decoded, data.where, preprocess, fill_normalization)
    return {name: MaskDataset(images, masks, preprocess, transform if name == "train" else None)
            for name, (images, masks) in decoded.items()}
