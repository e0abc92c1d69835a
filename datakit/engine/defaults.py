"""Data-aware defaults: values for the keys the user did not set, derived from the manifest.

A fixed default cannot suit 40 images and 100,000 alike: 20 epochs of batch 64 are a few dozen
optimizer steps on a small set, and early stopping from epoch 1 ends such a run before it has
learnt anything. So when a key is not set (by a config file, ``--set``, a flag, an override or a
sweep's parameters: ``config.user_set_keys``), ``derive`` chooses it from the data's statistics
(``DataStats``), and every choice is printed at the start of the run and saved in ``run.json``
with the reason. What the user set is never changed.

``derive`` is a pure function of (statistics, config, set keys): the rules below, in one place.

- input size: the images' median side, to a multiple of 8 in [16, 128] (tiny images are
  upscaled so a few conv blocks fit);
- batch size: about 1/25 of the training images, a power of two in [8, 64];
- training length: a budget of optimizer steps (at least ``MIN_STEPS``, at least ``MIN_EPOCHS``
  passes over the data), expressed as ``train.epochs``;
- warm-up: about 5% of the step budget (``schedule.warmup_epochs``), only when the length is derived;
- early stopping: ``train.patience`` so that it cannot fire before ``PATIENCE_SHARE`` of the
  steps have run;
- augmentation: the ``light`` preset with orientation ``fixed`` (no flips: a flip can change a
  class, as with digits; flips are opted into with ``augment: light``);
- a torchvision family's stem: CIFAR-style (``model.stem: small``) under 128 px;
- threads and workers (``threads_and_workers``): torch threads from the core count, the model and
  the work of one step, worker processes for augmentation when there are cores to spare; one
  thread and no workers when the machine has been oversubscribed for minutes (below);
- the cnn's depth (one block per halving the input affords), width (by class count) and head
  pooling (average and max side by side), only when no ``model.conv``/``model.pool``/``model.head``
  key is set.

Object tasks (localization, detection, semantic and instance segmentation) get the batch (at most
``BATCH_PIXELS`` input pixels), the step budget, the warm-up, early stopping and threads by the
same rules; their input size, augmentation and model stay the task's and the model family's (a
family's own defaults, e.g. FCOS's warm-up, are never replaced).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from datakit import config as cfg

MIN_SIDE, MAX_SIDE = 16, 128
TORCHVISION_MIN_SIDE = 32
MIN_BATCH, MAX_BATCH = 8, 64
IMAGES_PER_BATCH = 25  # batch ~ train images / 25: a small set still gets 20+ steps per epoch
MIN_STEPS = 2000  # optimizer steps a run gets at least (1,000 left 64 px shapes at 0.85 where 2,000 reached 0.93)
MIN_EPOCHS, MAX_EPOCHS = 12, 300
WARMUP_SHARE = 0.05
PATIENCE_SHARE = 0.3  # early stopping cannot fire before this share of the step budget has run
MIN_PATIENCE = 5
AUGMENT = "light:fixed"
# average-only pooling left 64 px shapes (the largest of several shapes names the class) at 0.956
# test accuracy; average and max side by side reached 0.995, as the shipped tuned config does
HEAD_POOLING = "global_avg_max"
MODEL_SECTIONS = ("model.conv.", "model.pool.", "model.head.")
# tasks whose training length, warm-up, early stopping and batch are derived too; their input size,
# augmentation and model belong to the task's own configs and model families (boxes, strides, masks)
OBJECT_TASKS = ("localization", "detection", "semantic_segmentation", "instance_segmentation")
# an object task's batch holds at most this many input pixels (64 images of 128 px): detection and
# segmentation keep their images' size, and 64 images of 512 px would not fit most GPUs
BATCH_PIXELS = 64 * 128 * 128


@dataclass(frozen=True)
class DataStats:
    """What the derivation looks at: the usable, labelled images of a manifest."""

    images: int
    train_images: int  # images the training split will hold
    class_counts: dict[str, int]
    median_side: float  # median of sqrt(width * height), as displayed
    side_range: tuple[float, float]  # 10th and 90th percentile of that side
    channels: int  # 1 when every image is single-channel, else 3
    total_bytes: int

    @property
    def classes(self) -> int:
        return len(self.class_counts)

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "train_images": self.train_images, "classes": self.classes,
                "class_counts": dict(self.class_counts), "median_side": round(self.median_side, 1),
                "side_p10_p90": [round(v, 1) for v in self.side_range], "channels": self.channels,
                "total_bytes": self.total_bytes}


@dataclass(frozen=True)
class Derived:
    key: str
    value: Any
    reason: str


@dataclass
class Derivation:
    """The derived values, the statistics they came from, and the config with them applied."""

    stats: DataStats | None
    derived: list[Derived] = field(default_factory=list)
    user_set: list[str] = field(default_factory=list)

    def apply(self, config: cfg.TrainConfig) -> cfg.TrainConfig:
        """A copy of ``config`` with the derived values; the user's set keys stay marked as set."""
        out = copy.deepcopy(config)
        marked = set(out.__dict__.get(cfg._USER_SET, ()))
        for d in self.derived:
            cfg.set_key(out, d.key, d.value)
        out.__dict__[cfg._USER_SET] = marked  # derived keys are not the user's
        cfg.validate(out)
        return out

    def amend(self, key: str, reason: Callable[[str], str]) -> None:
        """Rewrite the reason of a derived ``key`` (if derived) once the run knows more than ``derive`` did."""
        self.derived = [Derived(d.key, d.value, reason(d.reason)) if d.key == key else d for d in self.derived]

    def as_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.as_dict() if self.stats else None,
                "derived": [{"key": d.key, "value": d.value, "reason": d.reason} for d in self.derived],
                "user_set": sorted(self.user_set)}


# ---------------------------------------------------------------------------------------------
# statistics


def data_stats(manifest: Any, config: cfg.TrainConfig, task: str = "classification") -> DataStats | None:
    """Statistics of the usable labelled images (None when there are none: training says why).

    For an object task (boxes, masks) every readable image counts (one without objects is a
    negative) and the class counts are the objects' (none for semantic masks given as PNGs only)."""
    images = manifest.images
    box = task in OBJECT_TASKS
    rows = images[(images["status"] == "ok") & (True if box else images["label"].notna())]
    if rows.empty:
        return None
    import numpy as np

    width = rows["width"].astype("float64").to_numpy()
    height = rows["height"].astype("float64").to_numpy()
    side = np.sqrt(width * height)
    side = side[np.isfinite(side) & (side > 0)]
    if not len(side):
        side = np.array([float(cfg.DataConfig().image_size)])
    if box:  # stratified as the task splits them: by each image's largest object (localization needs one)
        from datakit.tasks.box_targets import NEGATIVE, largest_object_class, target_boxes

        rows = rows.assign(label=largest_object_class(target_boxes(manifest.annotations)[1], rows["id"]))
        if task == "localization":
            rows = rows[rows["label"].notna()]
            if rows.empty:
                return None
        rows = rows.assign(label=rows["label"].fillna(NEGATIVE))
    if "split" in rows.columns:
        from datakit.splitting import plan_splits

        # the split training will make (or complete) from these rows, so the counts printed agree
        planned = plan_splits(rows, config.data.val_fraction, config.data.test_fraction, config.seed).splits
        train = int((planned == "train").sum())
    else:
        train = int(round(len(rows) * (1 - config.data.val_fraction - config.data.test_fraction)))
    channels = rows["channels"].fillna(3).astype(int)
    labels = rows["label"]
    if box:
        annotations = manifest.annotations
        if task in ("localization", "detection"):  # the objects they train on: no crowd regions, no empty boxes
            from datakit.tasks.box_targets import target_boxes

            annotations = target_boxes(annotations)[1]
        labels = annotations.loc[annotations["image_id"].isin(rows["id"]), "category"]
    size = rows["file_size"] if "file_size" in rows.columns else None
    return DataStats(
        images=len(rows), train_images=max(1, train),
        class_counts={str(k): int(v) for k, v in labels.astype(str).value_counts().sort_index().items()},
        median_side=float(np.median(side)), side_range=(float(np.percentile(side, 10)), float(np.percentile(side, 90))),
        channels=1 if (channels == 1).all() else 3,
        total_bytes=int(size.fillna(0).sum()) if size is not None else 0,
    )


# ---------------------------------------------------------------------------------------------
# the rules


def input_side(median_side: float) -> int:
    return int(min(MAX_SIDE, max(MIN_SIDE, 8 * round(median_side / 8))))


def cnn_blocks(side: int) -> int:
    """Conv blocks (each halves the map): leave a 2x2 map on tiny inputs, 4x4 from 32 px on, 2 to 5 blocks."""
    last = 2 if side < 32 else 4
    return max(2, min(5, int(math.floor(math.log2(side / last)))))


def batch_size(train_images: int) -> int:
    target = train_images / IMAGES_PER_BATCH
    power = 2 ** int(math.floor(math.log2(max(target, 1))))
    return int(min(MAX_BATCH, max(MIN_BATCH, power)))


def _side_of(value: Any) -> int:
    return int(min(value)) if isinstance(value, list) else int(value)


# on a machine this large even the smallest step runs faster on half the cores (at most 8) than on
# 2 threads, and 2 workers keep up with it: the shipped digits config (16 px, batch 32, augmented)
# on 16 cores, four runs of benchmarks/threads.py on fresh lent H200 machines (issue 13), seconds
# per epoch: 8 threads + 2 workers 0.343, 0.379, 0.391, 0.394 (1.00-1.11x each run's best, the
# smallest worst case and the best median); 4 + 2 0.331, 0.423, 0.354, 0.450 (1.00-1.25x); 4 + 4
# 0.340, 0.438, 0.417, 0.359 (1.00-1.18x); 8 + 4 0.439, 0.443, 0.389, 0.374; 2 + 2 0.482, 0.420, 0.374
MANY_CORES = 8
MAX_WORKERS = 2
HEAVY_MODEL = 8  # a torchvision family does ~8x the small cnn's work per pixel: it uses threads sooner
# 5-minute load average per core above which the cores are oversubscribed by other processes (our
# own previous run adds at most one per core, so it never counts as busy on its own)
BUSY_LOAD = 1.5


def threads_and_workers(cores: int, side: int, batch: int, augmenting: bool, model: str = "cnn",
                        load: float = 0.0) -> tuple[int, int]:
    """(torch threads, DataLoader workers) for a machine with ``cores`` cores, from the core count,
    the model and the step's size.

    Workers only pay when there is augmentation to move out of the training process and cores to
    spare for it (4 or more), and 2 keep up with a small model; torch's threads follow the work of
    one step (pixels x batch, more for a torchvision family): a small step gains nothing from many
    threads and loses to their
    synchronisation (the issue measured 16 threads 5x slower than 2 on 8 px digits), though on 8
    or more cores half of them (at most 8) beat 2 even there (``MANY_CORES``).

    ``load`` (the 5-minute load average, a steadier figure than the 1-minute one) guards one case:
    cores oversubscribed by other processes. There every parallel operation waits until all its
    threads are scheduled again, and the shipped digits config ran 16-40x slower per epoch with 2
    threads than with 1 on 2 cores at load ~25 (benchmarks/threads.py, issue 13 note), while 1
    thread on an idle machine costs ~15% (the issue's 0.85 s against 0.73 s). Threads change speed
    only, never what is learnt; the choice and its reason are printed and saved in run.json, and
    ``train.threads`` set by the user always wins."""
    if load > BUSY_LOAD * cores:
        return 1, 0
    workers = min(MAX_WORKERS, cores // 4) if augmenting and cores >= 4 else 0
    work = side * side * batch * (1 if model == "cnn" else HEAVY_MODEL)
    wanted = 2 if work <= 32 * 32 * 64 else 4 if work <= 64 * 64 * 64 else 8
    if cores >= MANY_CORES:
        wanted = max(wanted, min(8, cores // 2))
    return max(1, min(wanted, cores - workers)), workers


def machine_load() -> float:
    """The 5-minute load average (0 where the platform has none)."""
    import os

    try:
        return os.getloadavg()[1]
    except (AttributeError, OSError):
        return 0.0


def available_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def derive(stats: DataStats | None, config: cfg.TrainConfig, user_set: Iterable[str],
           task: str = "classification", cores: int | None = None, processes: int = 1,
           load: float = 0.0) -> Derivation:
    """Derived values for the keys not in ``user_set`` (pure: nothing is read or changed; ``cores``
    is the machine's, given by the caller, with its 5-minute ``load`` average; ``processes`` > 1 under
    torchrun)."""
    chosen = set(user_set)
    result = Derivation(stats, user_set=sorted(chosen))
    if stats is None or task not in ("classification", *OBJECT_TASKS):
        return result
    box = task in OBJECT_TASKS
    family_defaults: dict[str, Any] = {}
    if box:  # a detector family's own defaults (lr, input size, warm-up, clipping) win over derived ones
        from datakit.models import REGISTRY

        family = REGISTRY.get((task, config.model.name))
        family_defaults = dict(family.defaults) if family else {}
        chosen |= set(family_defaults)

    def add(key: str, value: Any, reason: str) -> None:
        result.derived.append(Derived(key, value, reason))

    def free(*keys: str) -> bool:
        return not any(k in chosen for k in keys)

    # input size
    side = _side_of(config.data.image_size if "data.image_size" in result.user_set
                    else family_defaults.get("data.image_size", config.data.image_size))
    cnn = config.model.name == "cnn"
    if not box and free("data.image_size"):
        side = input_side(stats.median_side)
        if not cnn:  # a torchvision family downsamples 8x even with its small stem
            side = max(side, TORCHVISION_MIN_SIDE)
        low, high = stats.side_range
        # the side of a square of the same area: "image side" read as a width or a height misled
        spread = f"median sqrt(width x height) {stats.median_side:.0f} px (10-90%: {low:.0f}-{high:.0f})"
        if side > stats.median_side + 4:
            why = f"{spread}; upscaled to {MIN_SIDE} at least so conv blocks have room"
        elif side < stats.median_side - 4:
            why = f"{spread}; capped at {MAX_SIDE} (training cost grows with the square of the side)"
        else:
            why = f"{spread}, to a multiple of 8"
        add("data.image_size", side, why)

    # batch size
    batch = config.train.batch_size
    if free("train.batch_size"):
        batch = batch_size(stats.train_images)
        why = f"{stats.train_images} training images / {IMAGES_PER_BATCH}, a power of 2 in [{MIN_BATCH}, {MAX_BATCH}]"
        if box and batch * side * side > BATCH_PIXELS:
            batch = max(1, 2 ** int(math.floor(math.log2(BATCH_PIXELS / (side * side)))))
            why += f"; {batch} at {side} px keeps a batch within {BATCH_PIXELS / 2**20:g}M input pixels (memory)"
        add("train.batch_size", batch, why)
    steps_per_epoch = max(1, math.ceil(stats.train_images / batch))

    # training length: a step budget, through train.epochs
    epochs = config.train.epochs
    length_derived = free("train.epochs")
    if length_derived:
        budget = max(MIN_STEPS, MIN_EPOCHS * steps_per_epoch)
        epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(budget / steps_per_epoch)))
        add("train.epochs", epochs, f"a budget of ~{budget} optimizer steps at {steps_per_epoch} steps per epoch "
                                    f"({stats.train_images} images / batch {batch}); at least {MIN_EPOCHS} passes")
    steps = epochs * steps_per_epoch

    # warm-up: only with a derived length (a set length keeps its own schedule)
    if length_derived and free("schedule.warmup_epochs") and config.schedule.name != "plateau":
        warmup = max(1, min(epochs // 10, round(WARMUP_SHARE * steps / steps_per_epoch)))
        add("schedule.warmup_epochs", warmup, f"~{WARMUP_SHARE:.0%} of the {steps} steps "
                                              f"({warmup * steps_per_epoch} steps) from lr/10 up to optim.lr")

    # early stopping that cannot fire early
    if free("train.patience"):
        share = math.ceil(PATIENCE_SHARE * epochs)
        patience = max(MIN_PATIENCE, share)
        why = (f"{PATIENCE_SHARE:.0%} of the {steps} steps" if patience == share else
               f"at least {MIN_PATIENCE} epochs; {PATIENCE_SHARE:.0%} of the {steps} steps would be fewer")
        add("train.patience", patience, f"early stopping cannot fire before {patience * steps_per_epoch} steps "
                                        f"({why}; {patience} epochs without improvement)")

    # augmentation
    if not box and free("augment"):
        add("augment", AUGMENT, "light preset without flips (a flip can change a class, as with digits): ±2° turns, "
                                "±5% zoom, ±3% shifts, ±10% brightness/contrast; flips: augment=light")

    # a torchvision family's stem
    if not box and not cnn and free("model.stem"):
        from datakit.models.torchvision_models import SMALL_INPUT, stem_stride

        small = side < SMALL_INPUT
        add("model.stem", "small" if small else "imagenet",
            f"a {side} px input: " + (f"CIFAR-style 3x3 stride-{stem_stride(side)} first convolution, no max-pool, "
                                      f"the first block at {side // stem_stride(side)} px (the ImageNet stem would "
                                      f"leave {side // 4})" if small else
                                      f"{SMALL_INPUT} px or more suits the ImageNet stem"))

    # the cnn's depth and width
    if not box and cnn and not any(k.startswith(MODEL_SECTIONS) for k in chosen):
        blocks = cnn_blocks(side)
        first = 16 if stats.classes <= 10 else 32
        filters = [min(256, first * 2 ** i) for i in range(blocks)]
        add("model.conv.filters", filters, f"{blocks} blocks for a {side} px input (each halves it, down to "
                                           f"{side >> blocks} px); width from {first} for {stats.classes} classes")
        if side <= 32:
            add("model.conv.convs_per_block", 2, f"two convolutions per block: few blocks fit a {side} px input")
        add("model.head.pooling", HEAD_POOLING, "global average and max side by side: the max keeps a small object "
                                                "that averaging over a large background washes out")

    # threads and workers: how fast, never what is learnt
    if cores and processes == 1:
        augmenting = bool(config.augment) or any(d.key == "augment" and d.value for d in result.derived)
        threads, workers = threads_and_workers(cores, side, batch, augmenting, config.model.name, load)
        busy = load > BUSY_LOAD * cores
        if free("data.workers"):
            add("data.workers", workers, f"{cores} cores: " + (
                f"oversubscribed (5-minute load average {load:.1f}): no worker processes" if busy else
                f"{workers} worker processes augment while the model trains" if workers else
                ("too few cores to spare for worker processes" if augmenting else "nothing to augment: "
                 "cached images need no workers")))
        if free("train.threads") and busy:
            add("train.threads", threads, f"the cores are oversubscribed (5-minute load average {load:.1f} on {cores} "
                                          "cores): one thread, since threads that wait for each other's turn were "
                                          "16-40x slower there; set train.threads to choose")
        elif free("train.threads"):
            add("train.threads", threads, f"{side} px x batch {batch} per step of {config.model.name} on {cores} cores"
                                          f"{f' less {workers} workers' if workers and free('data.workers') else ''}: "
                                          "more threads than the step can use only slow it down")
    return result


def derive_config(manifest: Any, config: cfg.TrainConfig, task: str) -> tuple[cfg.TrainConfig, Derivation]:
    """``config`` with data-aware values for every key the user did not set, and what was derived."""
    import os

    processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
    derivation = derive(data_stats(manifest, config, task), config, cfg.user_set_keys(config), task,
                        cores=available_cores(), processes=processes, load=machine_load())
    return derivation.apply(config), derivation
