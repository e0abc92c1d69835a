"""Torch datasets over a manifest for classification: decode, resize, normalize, augment, batch.

An image goes: file --OpenCV decode (EXIF applied)--> uint8 HxWxC --resize policy--> [cache]
--online augmentation (train only)--> float tensor CxHxW normalized with the train split's
statistics. ``Preprocess`` holds everything but the augmentation and is saved with a run, so
prediction treats a new image exactly as training did.

Batches are fetched through ``__getitems__``: when images are cached and not augmented, a batch
is one fancy-index into a pre-normalized tensor, so the data path costs about what indexing
pre-loaded tensors by hand costs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datakit.config import DataConfig
from datakit.errors import DatakitError
from datakit.manifest import Manifest
from datakit.splitting import SplitPlan, plan_splits

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CACHE_BUDGET_BYTES = 2 * 1024**3
STATS_SAMPLE = 5000  # images used for mean/std when they are not all in memory


# ---------------------------------------------------------------------------------------------
# one image


def _check_pixels(path: str | os.PathLike[str], data: np.ndarray) -> None:
    """Refuse an image over the pixel limit from its header, before any pixel is decoded.

    The manifest's status already keeps such files out; this guards files changed since ingest,
    crafted manifests and ``predict`` on files no ingest has seen."""
    from PIL import UnidentifiedImageError

    from datakit.imageinfo import open_header, pixel_limit_problem

    try:
        width, height = open_header(data.tobytes()).size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return  # not something PIL reads: OpenCV decides below
    problem = pixel_limit_problem(width, height, None)
    if problem:
        raise DatakitError(f"{path}: image too large: {problem}")


def read_image(path: str | os.PathLike[str], channels: int) -> np.ndarray:
    """uint8 HxWxC (C = 1 or 3, RGB), as displayed (EXIF orientation applied)."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR_RGB
    from datakit.regular_files import NotRegularFile, read_regular_file

    try:
        # bytes + imdecode: works for any path the OS can open, unlike imread on some platforms
        data = np.frombuffer(read_regular_file(path), dtype=np.uint8)
    except NotRegularFile as exc:
        raise DatakitError(f"{path}: {exc.strerror}") from None
    except (OSError, ValueError) as exc:
        raise DatakitError(f"{path}: cannot read image ({exc})") from None
    _check_pixels(path, data)
    try:
        image = cv2.imdecode(data, flag)
    except cv2.error as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise DatakitError(f"{path}: cannot decode image ({first})") from None
    if image is None:
        raise DatakitError(f"{path}: cannot decode image (not an image, or damaged; if it is in a manifest, "
                           "re-run datakit ingest)")
    if image.ndim == 2:
        image = image[:, :, None]
    return image


def resize_image(image: np.ndarray, height: int, width: int, policy: str) -> np.ndarray:
    """Resize by policy: stretch, letterbox (fit inside, pad with black) or crop (cover, centre crop).

    The transforms live in ``datakit.augmentation.resize``, where boxes and masks follow them."""
    from datakit.augmentation.resize import resize_image as resize

    return resize(image, height, width, policy)


@dataclass
class Preprocess:
    """How a file becomes a model input; saved with every run and checkpoint."""

    height: int
    width: int
    channels: int
    resize: str
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        return cls(**{k: data[k] for k in ("height", "width", "channels", "resize", "mean", "std")})

    def load(self, path: str | os.PathLike[str]) -> np.ndarray:
        return resize_image(read_image(path, self.channels), self.height, self.width, self.resize)

    def check_augmented(self, image: np.ndarray) -> np.ndarray:
        """An augmented image, HxWxC, refused when the augmentation changed its size."""
        image = image if image.ndim == 3 else image[:, :, None]
        if image.shape[:2] != (self.height, self.width):
            raise DatakitError(f"augment changed the image size to {image.shape[0]}x{image.shape[1]}; training needs "
                               f"{self.height}x{self.width} (set the transform's size to match)")
        return image

    def to_tensor(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWxC -> float32 NxCxHxW, scaled to [0, 1] and normalized."""
        batch = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
        if self.mean:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
            batch.sub_(mean).div_(std)
        return batch.contiguous()


def image_size(config: DataConfig) -> tuple[int, int]:
    size = config.image_size
    if isinstance(size, list):
        return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
    return size, size


# ---------------------------------------------------------------------------------------------
# the labelled splits of a manifest


@dataclass
class LabelledSplits:
    """Usable, labelled images of a manifest by split, with the class table the model uses."""

    root: Path
    classes: list[str]  # model output index -> category name, in manifest id order
    category_ids: list[int]
    frames: dict[str, pd.DataFrame]  # split -> rows with id, path, label, target, channels
    plan: SplitPlan | None
    notes: list[str]
    where: str = "manifest"  # the manifest, for messages

    def split_table(self) -> pd.DataFrame:
        """id, path, label, split of every image used: written to the run as splits.csv."""
        parts = [f.assign(split=name)[["id", "path", "label", "split"]] for name, f in self.frames.items()]
        return pd.concat(parts, ignore_index=True)


def output_classes(manifest: Manifest, present: set[str], notes: list[str], usable: str) -> list[str]:
    """The categories in ``present``, in category-id order: a model's outputs. The others are noted."""
    ordered = sorted(manifest.categories, key=lambda c: int(c["id"]))
    missing = [c["name"] for c in ordered if c["name"] not in present]
    if missing:
        notes.append(f"categories without {usable} are not model outputs: {', '.join(missing)}")
    return [c["name"] for c in ordered if c["name"] in present]


def usable_images(manifest: Manifest, where: str, notes: list[str]) -> pd.DataFrame:
    """Rows whose status is ok; a note counts the others by reason."""
    images = manifest.images
    broken = images[images["status"] != "ok"]
    if len(broken):
        reasons = ", ".join(f"{k} {v}" for k, v in broken["status"].value_counts().sort_index().items())
        notes.append(f"{len(broken)} images are not usable and not used ({reasons})")
    ok = images[images["status"] == "ok"]
    if ok.empty:
        raise DatakitError(f"{where}: no usable images (every row's status is not 'ok')")
    return ok


def labelled_images(manifest: Manifest, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Usable rows with a label; notes say what was left out and why."""
    notes: list[str] = []
    ok = usable_images(manifest, where, notes)
    labelled = ok[ok["label"].notna()]
    if labelled.empty:
        raise DatakitError(
            f"{where}: no image has a label; classification needs one per image "
            "(ingest class sub-folders, or a flat folder with --labels FILE.csv)")
    if len(labelled) < len(ok):
        notes.append(f"{len(ok) - len(labelled)} usable images have no label and are not used")
    return labelled, notes


def prepare_classification(
    manifest: Manifest,
    config: DataConfig,
    seed: int,
    fixed_splits: pd.DataFrame | None = None,
    classes: list[str] | None = None,
) -> LabelledSplits:
    """Labelled images by split. ``fixed_splits`` (id, split) replays a run's recorded splits;
    ``classes`` fixes the output classes (resuming) instead of taking them from the manifest."""
    where = str(manifest.location or "manifest")
    labelled, notes = labelled_images(manifest, where)
    if classes is None:
        classes = output_classes(manifest, set(labelled["label"].astype(str)), notes, "usable images")
        if len(classes) < 2:
            found = f"1 ('{classes[0]}')" if classes else "0"
            raise DatakitError(f"{where}: classification needs at least two classes, found {found}")
    ids = {c["name"]: int(c["id"]) for c in manifest.categories}
    unknown = sorted(set(labelled["label"].astype(str)) - set(classes))
    if unknown:
        raise DatakitError(f"{where}: label(s) {', '.join(repr(u) for u in unknown)} are not classes of this "
                           f"model (classes: {', '.join(classes)})")
    target_of = {name: i for i, name in enumerate(classes)}
    splits, plan = assign_splits(labelled, config, seed, fixed_splits, where, notes)
    frames: dict[str, pd.DataFrame] = {}
    for name in ("train", "val", "test"):
        rows = labelled[splits.to_numpy() == name]
        frame = pd.DataFrame({
            "id": rows["id"].astype(str).to_numpy(),
            "path": rows["path"].astype(str).to_numpy(),
            "label": rows["label"].astype(str).to_numpy(),
            "target": rows["label"].astype(str).map(target_of).to_numpy(dtype=np.int64),
            "channels": rows["channels"].fillna(3).astype(int).to_numpy(),
        })
        frames[name] = frame.sort_values("id", kind="stable").reset_index(drop=True)
    for name in ("train", "val"):
        if frames[name].empty:
            raise DatakitError(f"{where}: split '{name}' has no labelled usable images; training needs "
                               f"train and val (set data.val_fraction, or give the manifest a '{name}' split)"
                               + _copies_kept_together(labelled))
    if frames["train"]["target"].nunique() < 2:
        raise DatakitError(f"{where}: split 'train' holds only one class; classification needs at least two classes")
    notes.extend(_classes_not_measured(frames, labelled))
    return LabelledSplits(manifest.root(), classes, [ids[c] for c in classes], frames, plan, notes, where)


def _copies_kept_together(labelled: pd.DataFrame) -> str:
    """Why a generated split can come out empty: copies of one image (same sha256) share a split."""
    if "sha256" not in labelled.columns:
        return ""
    distinct = int(labelled["sha256"].fillna(labelled["id"]).nunique())
    if distinct >= 0.9 * len(labelled):
        return ""
    return (f"; the {len(labelled)} usable images hold only {distinct} distinct files, and copies of one file "
            "stay in one split (balance-report lists the duplicates)")


def _classes_not_measured(frames: dict[str, pd.DataFrame], labelled: pd.DataFrame) -> list[str]:
    """Notes for classes trained on but absent from val or test: a 50:1 set's 2 minority images both
    went to train, and validation and test read 1.0 for a model that never predicts that class."""
    trained = set(frames["train"]["label"])
    totals = labelled["label"].astype(str).value_counts()
    notes = []
    for name in ("val", "test"):
        if frames[name].empty:
            continue
        missing = sorted(trained - set(frames[name]["label"]))
        if missing:
            listed = ", ".join(f"{c} ({int(totals.get(c, 0))} images in all)" for c in missing)
            notes.append(f"class(es) with no {name} images: {listed}; {name} accuracy says nothing about them "
                         "(give them more images, or a manifest split that holds some)")
    return notes


def assign_splits(rows: pd.DataFrame, config: DataConfig, seed: int, fixed_splits: pd.DataFrame | None, where: str,
                  notes: list[str]) -> tuple[pd.Series, SplitPlan | None]:
    """Each row's split: the run's recorded splits (``fixed_splits``: id, split) when resuming,
    else ``plan_splits`` (the manifest's own, completed or generated; its message goes to ``notes``).
    ``rows`` needs ``id``, ``label`` (the stratification key) and ``split``."""
    if fixed_splits is not None:
        split_of = dict(zip(fixed_splits["id"].astype(str), fixed_splits["split"].astype(str)))
        splits = rows["id"].astype(str).map(split_of)
        if splits.isna().all():
            raise DatakitError(f"{where}: none of its images are in the run's recorded splits (splits.csv)")
        return splits, None
    plan = plan_splits(rows, config.val_fraction, config.test_fraction, seed)
    if plan.message:
        notes.append(plan.message)
    return plan.splits, plan


def auto_channels(train: pd.DataFrame) -> int:
    return 1 if (train["channels"] == 1).all() else 3


# ---------------------------------------------------------------------------------------------
# decoding many images


class _DecodeDataset(Dataset):
    def __init__(self, paths: Sequence[Path], preprocess: Preprocess) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return index, self.preprocess.load(self.paths[index]), None
        except DatakitError as exc:  # one bad file is the caller's to skip or report, not a crash
            return index, None, str(exc)


def _as_list(items: list[Any]) -> list[Any]:
    return items


def decode_all(
    paths: Sequence[Path], preprocess: Preprocess, workers: int = 0,
    on_batch: Callable[[int], None] | None = None, failures: dict[int, str] | None = None,
) -> np.ndarray:
    """Every image decoded and resized: uint8 NxHxWxC, in parallel with ``workers`` processes.

    With ``failures`` (a dict), a file that cannot be decoded (damaged, over the pixel limit, not
    a regular file) is recorded there by index with its reason and its slot left black; without
    it, the first such file raises its DatakitError."""
    out = np.zeros((len(paths), preprocess.height, preprocess.width, preprocess.channels), dtype=np.uint8)
    loader = DataLoader(_DecodeDataset(paths, preprocess), batch_size=64, num_workers=workers, collate_fn=_as_list)
    for batch in loader:
        for index, image, error in batch:
            if error is None:
                out[index] = image
            elif failures is None:
                raise DatakitError(error)
            else:
                failures[index] = error
        if on_batch is not None:
            on_batch(len(batch))
    return out


def screen_files(paths: Sequence[Path]) -> dict[int, str]:
    """Files that cannot be decoded, found without decoding (regular file, readable header, pixel
    limit, and ingest's end-of-file checks, so a file cut short since ingest is caught), by index:
    for the path that decodes batch by batch, so a bad file is left out up front."""
    from PIL import UnidentifiedImageError

    from datakit.imageinfo import _structure_problem, open_header, pixel_limit_problem
    from datakit.regular_files import NotRegularFile, read_regular_file

    failures: dict[int, str] = {}
    for index, path in enumerate(paths):
        try:
            data = read_regular_file(path)  # read, not decoded: a small part of a decode's cost
            with open_header(data) as img:
                (width, height), fmt = img.size, img.format or ""
        except NotRegularFile as exc:
            failures[index] = f"{path}: {exc.strerror}"
            continue
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            failures[index] = f"{path}: cannot read image header ({exc})"
            continue
        problem = pixel_limit_problem(width, height, None)
        if problem:
            failures[index] = f"{path}: image too large: {problem}"
            continue
        problem = _structure_problem(fmt, data)
        if problem:
            failures[index] = f"{path}: damaged: {problem}"
    return failures


def skipped_note(failures: dict[int, str], where: str, listed: int = 20) -> str:
    """One line for images left out because they could not be decoded, naming each (the first
    ``listed``) with its reason."""
    reasons = [failures[i] for i in sorted(failures)]
    more = f"; and {len(reasons) - listed} more" if len(reasons) > listed else ""
    return f"{len(failures)} {where} image(s) could not be decoded and are left out: {'; '.join(reasons[:listed])}{more}"


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NxHxWxC images, on the [0, 1] scale."""
    channels = images.shape[-1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    count = 0
    for start in range(0, len(images), 1024):  # float64 per chunk keeps memory small and sums exact
        chunk = images[start:start + 1024].reshape(-1, channels).astype(np.float64) / 255.0
        total += chunk.sum(0)
        squares += (chunk * chunk).sum(0)
        count += len(chunk)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean * mean, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # a constant channel must not divide by zero
    return [float(m) for m in mean], [float(s) for s in std]


def fits_in_cache(count: int, preprocess: Preprocess, setting: bool | str) -> bool:
    if setting != "auto":
        return bool(setting)
    return count * preprocess.height * preprocess.width * preprocess.channels <= CACHE_BUDGET_BYTES


# ---------------------------------------------------------------------------------------------
# the dataset


class ImageClassificationDataset(Dataset):
    """(image tensor CxHxW, class index) for rows of one split; batches via ``__getitems__``."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Sequence[int],
        preprocess: Preprocess,
        transform: Callable[..., dict[str, Any]] | None = None,
        images: np.ndarray | None = None,
    ) -> None:
        self.paths = list(paths)
        self.targets = torch.as_tensor(np.array(targets, dtype=np.int64))
        self.preprocess = preprocess
        self.transform = transform
        self.images = images  # uint8 NxHxWxC when cached
        self.skipped: dict[int, str] = {}  # files that failed to decode during the run (this process)
        self._ready = None
        if images is not None and transform is None and images.nbytes * 4 <= CACHE_BUDGET_BYTES:
            # without augmentation the normalized tensors never change: compute them once
            self._ready = preprocess.to_tensor(images)
            self.images = None

    def __len__(self) -> int:
        return len(self.paths)

    def reseed(self, seed: int) -> None:
        if self.transform is not None and hasattr(self.transform, "set_random_seed"):
            from datakit.augmentation.targets import reseed

            reseed(self.transform, seed)  # a stream per transform: albumentations' set_random_seed shares one seed

    def _uint8(self, index: int) -> tuple[np.ndarray, int]:
        """The image (augmented on train) and the index it came from (see ``_decoded``)."""
        image, index = (self.images[index], index) if self.images is not None else self._decoded(index)
        if self.transform is not None:
            from datakit.online_augment import apply

            image = self.preprocess.check_augmented(apply(self.transform, image))
        return image, index

    def _decoded(self, index: int) -> tuple[np.ndarray, int]:
        """Decode a file; one that fails (damaged pixels behind a good header, which the screen
        before the run cannot see) is left out for the rest of the run, said once per file on
        stderr, and the next file of the split that decodes takes its place, with its own label:
        the batch keeps its size, so the loss and DDP's batch counts stay as they were."""
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self.skipped:
                continue
            try:
                return self.preprocess.load(self.paths[i]), i
            except DatakitError as exc:
                self.skipped[i] = str(exc)
                from rich.markup import escape

                from datakit.console import console

                console.print(f"[yellow]skipped:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise DatakitError(f"no image of this split can be decoded (first: {self.skipped[min(self.skipped)]})")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        if self._ready is not None:
            return self._ready[index], self.targets[index]
        images, used = zip(*(self._uint8(i) for i in indices))
        return self.preprocess.to_tensor(np.stack(images)), self.targets[torch.as_tensor(used, dtype=torch.long)]


def _passthrough(batch: Any) -> Any:
    return batch


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    # a worker augments one batch at a time: one thread each, or workers x threads fight for the cores
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if info is not None and hasattr(info.dataset, "reseed"):
        # each worker gets its own augmentation stream, derived from DataLoader's per-worker seed; every
        # task's dataset has reseed (box, mask and instance datasets were left with one shared stream)
        info.dataset.reseed(info.seed % 2**32)


class EpochSampler(Sampler[int]):
    """Indices for one epoch: shuffled or class-balanced, sharded across DDP processes.

    The order depends only on (seed, epoch), so every process draws the same permutation and
    takes its own slice, and a resumed run sees the same order as an uninterrupted one.
    """

    def __init__(
        self, size: int, shuffle: bool = True, weights: torch.Tensor | None = None,
        rank: int = 0, world: int = 1, seed: int = 0, pad: bool = True,
    ) -> None:
        self.size, self.shuffle, self.weights = size, shuffle, weights
        self.rank, self.world, self.seed, self.pad = rank, world, seed, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        if self.shuffle:
            return torch.randperm(self.size, generator=generator)
        return torch.arange(self.size)

    def __iter__(self) -> Iterator[int]:
        indices = self._indices()
        if self.world > 1:
            if self.pad and len(indices) % self.world:
                # equal batch counts on every process, else DDP waits forever for the short one
                extra = self.world - len(indices) % self.world
                indices = torch.cat([indices, indices[:extra]])
            indices = indices[self.rank::self.world]
        return iter(indices.tolist())

    def __len__(self) -> int:
        if self.world == 1:
            return self.size
        if self.pad:
            return -(-self.size // self.world)
        return len(range(self.rank, self.size, self.world))


def make_loader(
    dataset: Dataset, batch_size: int, sampler: EpochSampler, workers: int, pin_memory: bool,
) -> DataLoader:
    """The loader every task trains with. With worker processes, OpenCV in this process is set to one
    thread (training restores the caller's setting when it ends): workers are forked, and a fork
    of OpenCV's running thread pool deadlocks the first OpenCV call in the worker."""
    if workers > 0:
        cv2.setNumThreads(1)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=_passthrough,
        pin_memory=pin_memory, worker_init_fn=_seed_worker, persistent_workers=workers > 0,
    )


def balanced_sample_weights(targets: np.ndarray, classes: int) -> torch.Tensor:
    """Per-image weights so that every class is drawn equally often."""
    counts = np.bincount(targets, minlength=classes).astype(np.float64)
    return torch.as_tensor(1.0 / counts[targets], dtype=torch.double)


def balanced_class_weights(targets: np.ndarray, classes: int) -> torch.Tensor:
    """Loss weights n / (k * count) (scikit-learn's 'balanced'); classes absent from train get 0."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(targets)
    weights = np.zeros(classes, dtype=np.float64)
    weights[present] = compute_class_weight("balanced", classes=present, y=targets)
    return torch.as_tensor(weights, dtype=torch.float32)
