"""Batches of a cached split that lives on the training device: indexed, augmented and normalized there.

On a GPU, a DataLoader over cached images pays for every batch twice: the images are gathered and
augmented on the CPU, then copied to the device. When the cached images fit in a quarter of the
device's free memory, ``DeviceBatches`` keeps them there once (uint8, or the normalized tensors
when there is nothing to augment) and serves each batch with one index into them; augmentation
runs on the whole batch on the device (``datakit.augmentation.batched``), when the pipeline has a
batched equivalent; its parameters are drawn on the CPU and reach the device in one small copy.

``data.on_device``: auto (on a CUDA device, when the images fit and the augmentation is made of
``AUTO_BATCHED`` transforms), true (any translated augmentation, also on the CPU, where it is the
same code on CPU tensors; an error when impossible), false
(always the DataLoader). The batch order is the split's ``EpochSampler``'s (seeded per epoch, DDP
shards included); augmentation draws from a numpy generator seeded by (seed, epoch), so a resumed run
augments as an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from datakit.augmentation.batched import BatchedAugment, batched_equivalent, transform_names
from datakit.errors import DatakitError

DEVICE_SHARE = 0.25  # of the device's free memory, at most, for the cached images of all splits
# what auto batches on a GPU: the light and medium presets' transforms, whose batched versions cost a few dozen
# small kernels per batch (light measured on an H200 at 0.95x the DataLoader with 4 workers). The others
# (heavy's colour jitter, blurs, noise) are several times that and not yet timed against workers on a GPU;
# data.on_device: true batches them
AUTO_BATCHED = frozenset({"HorizontalFlip", "VerticalFlip", "Affine", "CropAndPad", "RandomBrightnessContrast",
                          "RandomGamma"})


class DeviceBatches:
    """Iterable of (images, targets) batches, both already on ``device``; ``len`` is the batch count."""

    def __init__(self, dataset: Any, sampler: Any, batch_size: int, device: torch.device,
                 augment: BatchedAugment | None, seed: int) -> None:
        self.sampler, self.batch_size, self.device = sampler, batch_size, device
        self.augment, self.seed = augment, seed
        self.targets = dataset.targets.to(device)
        preprocess = dataset.preprocess
        kept = _kept(dataset, augment is not None)
        if kept is dataset._ready:
            self.ready: torch.Tensor | None = kept.to(device)
            self.images: torch.Tensor | None = None
        else:
            self.ready = None
            self.images = torch.as_tensor(kept).to(device).permute(0, 3, 1, 2).contiguous()
        channels = preprocess.channels
        self.mean = torch.tensor(preprocess.mean or [0.0] * channels, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(preprocess.std or [1.0] * channels, device=device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(self.device)
        # modulo: numpy takes no negative seed, and config.seed may be one
        rng = np.random.default_rng((self.seed * 1_000_003 + getattr(self.sampler, "epoch", 0)) % 2**63)
        for index in order.split(self.batch_size):
            if self.ready is not None:
                yield self.ready[index], self.targets[index]
                continue
            images = self.images[index].float()
            if self.augment is not None:
                images = self.augment(images, rng)
            # Preprocess.to_tensor's arithmetic: [0, 1], then the channel statistics
            yield images.div_(255.0).sub_(self.mean).div_(self.std), self.targets[index]


@dataclass
class DevicePlan:
    """Which splits train from ``DeviceBatches``, and a line for the run's notes saying why (or why not)."""

    splits: tuple[str, ...]
    augment: BatchedAugment | None
    note: str


def _kept(dataset: Any, augmenting: bool) -> Any:
    """What ``DeviceBatches`` keeps of a dataset: its normalized tensors when nothing augments them, else its
    uint8 images (None when neither is cached)."""
    return dataset._ready if dataset._ready is not None and not augmenting else dataset.images


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None elsewhere (the CPU's memory already holds the cache)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def plan(datasets: dict[str, Any], device: torch.device, setting: bool | str, task: str) -> DevicePlan:
    """Decide ``data.on_device`` for a run's datasets (see the module doc)."""
    from datakit.data import ImageClassificationDataset

    def refuse(why: str) -> DevicePlan:  # reached with true, or with auto on a CUDA device
        if setting is True:
            raise DatakitError(f"data.on_device is true, but {why}; use auto or false")
        return DevicePlan((), None, f"data on {device.type} through the DataLoader: {why}")

    if setting is False or (setting == "auto" and device.type != "cuda"):
        return DevicePlan((), None, "")
    if task != "classification" or not all(isinstance(d, ImageClassificationDataset) for d in datasets.values()):
        return refuse(f"only classification keeps its images on the device so far (task: {task})")
    if any(d._ready is None and d.images is None for d in datasets.values()):
        return refuse("the images are not cached in memory (data.cache)")
    augment = None
    transform = datasets["train"].transform
    if transform is not None:
        augment, why = batched_equivalent(transform)
        if augment is None:
            return refuse(f"the augmentation cannot run batched on the device ({why})")
        untimed = sorted(set(transform_names(transform)) - AUTO_BATCHED)
        if setting == "auto" and untimed:
            return refuse(f"{', '.join(untimed)} run batched on the device only with data.on_device: true "
                          "(not yet timed against DataLoader workers on a GPU)")
    needed = sum(int(_kept(d, name == "train" and augment is not None).nbytes) for name, d in datasets.items())
    free = free_memory(device)
    if free is not None and needed > DEVICE_SHARE * free:
        return refuse(f"the cached images ({needed / 2**20:.0f} MiB) need more than a quarter of the device's "
                      f"free memory ({free / 2**20:.0f} MiB)")
    where = f"{needed / 2**20:.1f} MiB of cached images kept on {device.type}"
    return DevicePlan(tuple(datasets), augment,
                      f"{where}, batched there" + (", augmented there in batches" if augment is not None else "")
                      + "; no DataLoader, so data.workers is not used")
